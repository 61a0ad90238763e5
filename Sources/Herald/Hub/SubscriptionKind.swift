// The three kinds of Redis pub/sub subscription, as clients name them and as Redis commands
// them.

/// The three kinds of pub/sub subscription, named as in the query string.
public enum SubscriptionKind: String, CaseIterable, Sendable {
    case channel
    case pattern
    case shard

    /// The Redis commands for this kind.
    var subscribeCommand: String { ["channel": "SUBSCRIBE", "pattern": "PSUBSCRIBE", "shard": "SSUBSCRIBE"][rawValue]! }
    var unsubscribeCommand: String { ["channel": "UNSUBSCRIBE", "pattern": "PUNSUBSCRIBE", "shard": "SUNSUBSCRIBE"][rawValue]! }
}
