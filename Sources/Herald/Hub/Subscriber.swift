// What the Hub needs of a local subscriber (a WebSocket client or an event stream).

/// A local listener for pub/sub deliveries; confined to its loop.
public protocol Subscriber: AnyObject {
    /// Queues one delivery; never blocks and never writes to Redis.
    func deliver(_ delivery: Delivery)
    /// Herald's link to Redis was lost and restored: what was published meanwhile is gone.
    func gap(kind: SubscriptionKind, name: RedisName)
}
