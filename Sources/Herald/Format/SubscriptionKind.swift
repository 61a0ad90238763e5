// The three kinds of Redis pub/sub subscription, as clients name them and as Redis commands
// them.

/// The three kinds of pub/sub subscription, named as in the query string.
public enum SubscriptionKind: String, CaseIterable, Sendable {
    case channel
    case pattern
    case shard

    /// The Redis commands for this kind.
    var subscribeCommand: String {
        switch self {
        case .channel: "SUBSCRIBE"
        case .pattern: "PSUBSCRIBE"
        case .shard: "SSUBSCRIBE"
        }
    }
    var unsubscribeCommand: String {
        switch self {
        case .channel: "UNSUBSCRIBE"
        case .pattern: "PUNSUBSCRIBE"
        case .shard: "SUNSUBSCRIBE"
        }
    }
}
