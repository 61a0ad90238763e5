// Where a channel's presence lives in Redis: a hash of its members, a sorted set of their
// leases, and the internal pub/sub channel their join and leave events travel on. The two keys
// share one hash slot (the scripts touch both, which a Redis Cluster allows only within a slot),
// tagged like queue keys (QueueKeys): the `{tag}` is the channel's own hash tag or its whole
// name, the name follows with its length in bytes, so no two channels share a key:
//   channel `room`     -> herald:presence:{room}:4:room, herald:presence-leases:{room}:4:room,
//                         events on herald:presence-events:{room}:4:room
//   channel `a}b`      -> herald:presence:{<slot tag>}:3:a}b, ...

/// The Redis names of one channel's presence.
public struct PresenceKeys: Equatable, Sendable {
    /// Hash: client id -> the member's JSON (`{"client":..,"user":..,"info":..,"since":..}`).
    public let members: String
    /// Sorted set: client id -> lease end (Redis's clock, Unix ms).
    public let leases: String
    /// Pub/sub channel of the join and leave events (JSON, as clients receive them).
    public let events: String

    public init(channel: String) {
        let scope = "{\(QueueKeys.tag(channel))}:\(channel.utf8.count):\(channel)"
        members = InternalKeys.prefix + "presence:" + scope
        leases = InternalKeys.prefix + "presence-leases:" + scope
        events = InternalKeys.prefix + "presence-events:" + scope
    }

    /// Whether `channel` is one of Herald's presence event channels, which clients may not
    /// publish to (a forged join or leave would reach every member).
    public static func isEventChannel(_ channel: String) -> Bool {
        channel.utf8.starts(with: eventPrefix)
    }

    /// By bytes, with nothing built per call: every publish asks.
    public static func isEventChannel(_ channel: RedisName) -> Bool {
        channel.bytes.starts(with: eventPrefix)
    }

    private static let eventPrefix = Array((InternalKeys.prefix + "presence-events:").utf8)
}
