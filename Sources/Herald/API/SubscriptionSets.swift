// The pub/sub names one session holds, by kind: three sets in place of a dictionary of them,
// so an idle subscriber with one channel carries one small set, not a dictionary's storage too
// (Herald keeps tens of thousands of these).

struct SubscriptionSets {
    private var channels: Set<RedisName>?
    private var patterns: Set<RedisName>?
    private var shards: Set<RedisName>?

    /// The names of `kind` held; nil when none were ever added (or all were cleared).
    subscript(kind: SubscriptionKind) -> Set<RedisName>? {
        get {
            switch kind {
            case .channel: channels
            case .pattern: patterns
            case .shard: shards
            }
        }
        set {
            switch kind {
            case .channel: channels = newValue
            case .pattern: patterns = newValue
            case .shard: shards = newValue
            }
        }
    }

    subscript(kind: SubscriptionKind, default empty: Set<RedisName>) -> Set<RedisName> {
        get { self[kind] ?? empty }
        set { self[kind] = newValue }
    }

    /// Names held, of every kind.
    var count: Int { (channels?.count ?? 0) + (patterns?.count ?? 0) + (shards?.count ?? 0) }

    /// Every kind with its names, for leaving them all.
    var all: [(kind: SubscriptionKind, names: Set<RedisName>)] {
        SubscriptionKind.allCases.compactMap { kind in self[kind].map { (kind, $0) } }
    }
}
