// One subscriber connection's part in presence: its client id and identity, the channels it
// is a member of, and the `presence` op. The session hands it the channels to join and leave;
// the loop's PresenceService does the Redis work.

/// A connection's presence memberships; confined to its loop.
final class SessionPresence: PresenceListener {
    /// This connection's client id, the same in every channel it joins.
    let client: String
    let identity: PresenceIdentity
    private let service: PresenceService
    /// Where events and answers go (the session's JSON messages).
    private let send: ([UInt8]) -> Void
    /// Channels joined, by bytes, with their names as given.
    private var joined: [RedisName: String] = [:]
    /// Presence reads waiting on Redis.
    private var reads = 0
    /// Presence reads one connection may have waiting on Redis.
    static let maxReads = 16

    init(service: PresenceService, identity: PresenceIdentity, client: String, send: @escaping ([UInt8]) -> Void) {
        self.client = client
        self.service = service
        self.identity = identity
        self.send = send
    }

    /// Joins each channel not joined yet.
    func join(_ channels: [String]) {
        for channel in channels where joined.updateValue(channel, forKey: RedisName(channel)) == nil {
            service.join(self, member: PresenceMember(client: client, identity: identity, since: PresenceService.wallMs()), channel: channel)
        }
    }

    /// Leaves each of `channels` joined.
    func leave(_ channels: [String]) {
        for channel in channels {
            if let held = joined.removeValue(forKey: RedisName(channel)) { service.leave(client: client, channel: held) }
        }
    }

    func leaveAll() {
        leave(Array(joined.values))
    }

    func presenceEvent(_ json: [UInt8]) {
        send(json)
    }

    /// `{"op":"presence","channel":"room"}` -> `{"type":"presence","channel":..,"clients":..,
    /// "users":..,"members":[..]}`; needs the subscribe grant for the channel.
    func answer(_ json: JSONValue, id: JSONValue?, grant: Grant) throws(HTTPError) {
        guard let channel = json["channel"]?.stringValue, !channel.isEmpty else {
            throw .badRequest("presence needs a channel (a non-empty string)")
        }
        guard grant.maySubscribe(RedisName(channel)) else { throw .forbidden("reading the presence of \(channel)") }
        guard reads < Self.maxReads else {
            throw .overloaded("\(Self.maxReads) presence reads of this connection are waiting on Redis; wait for their answers")
        }
        reads += 1
        service.read(channel) { [weak self] result in
            guard let self else { return }
            reads -= 1
            switch result {
            case .success(let snapshot): send(Envelope.answer("presence", id: id) { snapshot.write(&$0) })
            case .failure(let error): send(Envelope.error(code: error.code, message: error.message, id: id))
            }
        }
    }
}
