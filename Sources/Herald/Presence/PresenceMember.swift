// The JSON of presence: one member as Redis keeps it and members see it, and the answer to a
// presence read (`GET /presence/{channel}`, the `presence` op). Join and leave events are the
// member's JSON with `type` and `channel` in front, put together by the scripts
// (PresenceScripts), so a leave sent by a reaper carries exactly what the join did.

/// One member of a channel's presence.
public struct PresenceMember: Equatable, Sendable {
    /// The connection's id (PresenceService.newClientID), unique across Heralds.
    public let client: String
    public let identity: PresenceIdentity
    /// When the member joined, Unix ms (its Herald's clock).
    public let since: Int64

    public init(client: String, identity: PresenceIdentity, since: Int64) {
        self.client = client
        self.identity = identity
        self.since = since
    }

    /// `{"client":..,"user":..,"info":..,"since":..}`: always an object that starts with `{"`,
    /// which the scripts rely on to splice `type` and `channel` in front.
    public var json: [UInt8] {
        var writer = JSONWriter()
        writer.object { o in
            o.field("client", client)
            o.field("user", json: identity.user.map { JSONValue.string($0).serialized } ?? Array("null".utf8))
            o.field("info", json: identity.info?.serialized ?? Array("null".utf8))
            o.field("since", Int(since))
        }
        return writer.bytes
    }

    /// `"room"`: the channel as a JSON string, as the scripts put it in events.
    public static func channelJSON(_ channel: String) -> [UInt8] {
        JSONValue.string(channel).serialized
    }
}

/// What a presence read found: counts over every member, and the members listed (at most
/// `PresenceService.maxListed`).
public struct PresenceSnapshot: Equatable, Sendable {
    public let channel: String
    public let clients: Int
    /// Distinct non-null users among all members.
    public let users: Int
    /// Each member's JSON as stored.
    public let members: [[UInt8]]

    /// From the read script's answer `[clients, users, [member, ..]]`; nil for anything else.
    public init?(channel: String, reply: RedisReply) {
        guard case .array(let items) = reply, items.count == 3, let clients = items[0].integer, let users = items[1].integer,
            case .array(let listed) = items[2]
        else { return nil }
        self.channel = channel
        self.clients = clients
        self.users = users
        members = listed.compactMap(\.bytes)
    }

    /// Whether members were left out of `members` (more than the cap).
    public var truncated: Bool { members.count < clients }

    /// The fields every answer carries: channel, clients, users, members (and `truncated`).
    public func write(_ o: inout JSONWriter.ObjectWriter) {
        o.field("channel", channel)
        o.field("clients", clients)
        o.field("users", users)
        var list: [UInt8] = [UInt8(ascii: "[")]
        for (i, member) in members.enumerated() {
            if i > 0 { list.append(UInt8(ascii: ",")) }
            list += member
        }
        list.append(UInt8(ascii: "]"))
        o.field("members", json: list)
        if truncated { o.field("truncated", true) }
    }
}
