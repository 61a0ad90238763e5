// One loop's presence: the members its connections hold in each channel, their leases, and
// the join and leave events it hands them. A channel with local members has one subscription
// to its event channel through the Hub (riding the loop's subscriber link, like any channel);
// every event heard there goes to each local member of that channel. Every quarter of
// `--presence-ttl` the loop sends one script per channel that reaps the channel's expired
// members (announcing their leave) and renews its own members' leases for half the TTL: a
// Herald that dies leaves its members' leases to run out, and the next reap by any Herald
// holding that channel (or any presence read) announces their leave within the TTL. After its
// link to Redis comes back, a loop reaps nothing for one lease (as QueueLeases does), so the
// members of Heralds still reconnecting after the same outage are not announced as gone.
// Nothing here runs on a publish: presence costs nothing to channels no one joins.
import Glibc
import Logging

/// Told of each join and leave in a channel it is a member of; confined to its loop.
protocol PresenceListener: AnyObject {
    /// A join or leave event, as JSON text (`{"type":"join","channel":..,"client":..,..}`).
    func presenceEvent(_ json: [UInt8])
}

/// One loop's presence members, leases and events; confined to its loop.
final class PresenceService: Subscriber {
    /// A channel with members on this loop.
    private struct Room {
        let channel: String
        let keys: PresenceKeys
        /// `channel` as a JSON string, for the scripts' events.
        let channelJSON: [UInt8]
        /// This loop's members by client id: who to tell, and the member's stored JSON.
        var members: [String: (listener: PresenceListener, member: [UInt8])] = [:]
    }

    /// Most members one read lists (the counts cover all of them; the answer says `truncated`).
    static let maxListed = 1000

    private let redis: CommandSender
    private let hub: Hub
    private let loop: EventLoop
    private let logger: Logger
    private let stats: LoopStats
    /// `--presence-ttl`, ms: how long members of a Herald that died stay listed at most.
    let ttlMs: Int64
    private var rooms: [RedisName: Room] = [:]
    /// Event channel name (bytes) -> the channel whose room it feeds.
    private var byEventChannel: [[UInt8]: RedisName] = [:]
    /// Whether the refresh timer runs (it stops when no room is left).
    private var ticking = false
    /// Scripts Redis refused, for logs (at most one line per 10 s).
    private var loggedMs: Int64?
    /// `redis.reconnects` when last looked at; a change means the link came back.
    private var reconnectsSeen = 0
    /// No reaping before this (monotonic ms): a lease after the link came back, so the members
    /// of Heralds still reconnecting after the same outage are not announced as gone.
    private var quietUntil: Int64 = 0

    init(redis: CommandSender, hub: Hub, loop: EventLoop, ttlMs: Int64, stats: LoopStats, logger: Logger) {
        self.redis = redis
        self.stats = stats
        self.hub = hub
        self.loop = loop
        self.ttlMs = ttlMs
        self.logger = logger
    }

    /// A lease lasts half the TTL and is renewed every quarter: one renewal may be late or
    /// lost without the member leaving, and a dead Herald's members are reaped within
    /// half + a quarter of the TTL by a Herald that holds the channel.
    private var leaseMs: Int64 { max(ttlMs / 2, 1) }
    private var tickMs: Int64 { max(ttlMs / 4, 1) }
    /// How long a channel's keys outlive the last join or renewal.
    private var keepMs: Int64 { ttlMs * 2 }

    /// A fresh client id: 16 hex digits from the system's random source.
    static func newClientID() -> String {
        let n = UInt64.random(in: 0...UInt64.max)
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Wall-clock Unix ms, for `since`.
    static func wallMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    // MARK: Members

    /// Makes `member` a member of `channel`: once this loop listens to the channel's events
    /// (so `listener` hears its own join, and every one after), the join script runs.
    func join(_ listener: PresenceListener, member: PresenceMember, channel: String) {
        loop.assertConfined()
        let name = RedisName(channel)
        let isNew = rooms[name] == nil
        var room = rooms[name] ?? Room(channel: channel, keys: PresenceKeys(channel: channel), channelJSON: PresenceMember.channelJSON(channel))
        let json = member.json
        if room.members.updateValue((listener, json), forKey: member.client) == nil { stats.presenceMembers.bump() }
        if isNew { stats.presenceChannels.bump() }
        rooms[name] = room
        byEventChannel[Array(room.keys.events.utf8)] = name
        startTicking()
        let client = member.client
        hub.subscribe(self, kind: .channel, names: [RedisName(room.keys.events)]) { [self] in
            // Left (or left and came back) while the subscription was confirmed: the later
            // call decides.
            guard let room = rooms[name], let held = room.members[client], held.listener === listener else { return }
            sendJoin(room, client: client, member: json)
        }
    }

    /// `client` leaves `channel` (unsubscribed, or its connection closed).
    func leave(client: String, channel: String) {
        loop.assertConfined()
        let name = RedisName(channel)
        guard var room = rooms[name], room.members.removeValue(forKey: client) != nil else { return }
        stats.presenceMembers.bump(-1)
        run(PresenceScripts.leave, room, extra: [Array(client.utf8)], script: "leave")
        if room.members.isEmpty {
            stats.presenceChannels.bump(-1)
            rooms[name] = nil
            byEventChannel[Array(room.keys.events.utf8)] = nil
            hub.unsubscribe(self, kind: .channel, names: [RedisName(room.keys.events)])
        } else {
            rooms[name] = room
        }
    }

    private func sendJoin(_ room: Room, client: String, member: [UInt8]) {
        run(
            PresenceScripts.join, room,
            extra: [Array(String(leaseMs).utf8), Array(String(keepMs).utf8), Array(client.utf8), member], script: "join")
    }

    // MARK: Reads

    /// Reaps `channel`'s expired members, then reads its presence.
    func read(_ channel: String, _ done: @escaping (Result<PresenceSnapshot, HTTPError>) -> Void) {
        let keys = PresenceKeys(channel: channel)
        let arguments: [[UInt8]] =
            .command("EVAL", PresenceScripts.read, "2", keys.members, keys.leases, keys.events)
            + [PresenceMember.channelJSON(channel), reapArgument(), Array(String(Self.maxListed).utf8)]
        let sent = redis.send(key: Array(keys.members.utf8), arguments) { reply in
            if let snapshot = PresenceSnapshot(channel: channel, reply: reply) {
                done(.success(snapshot))
            } else {
                done(.failure(RedisErrors.httpError(reply, command: "the presence read")))
            }
        }
        if !sent { done(.failure(RedisErrors.unreachable(redis))) }
    }

    // MARK: Leases

    /// "1" when scripts may reap now, "0" in the quiet time after the link came back.
    private func reapArgument() -> [UInt8] {
        if redis.reconnects != reconnectsSeen {
            reconnectsSeen = redis.reconnects
            quietUntil = Clock.nowMs() + leaseMs
        }
        return Array((Clock.nowMs() >= quietUntil ? "1" : "0").utf8)
    }

    private func startTicking() {
        guard !ticking else { return }
        ticking = true
        loop.schedule(afterMs: tickMs) { [self] in tick() }
    }

    /// One refresh script per channel with members here: reap, renew, re-join the lost.
    private func tick() {
        guard !rooms.isEmpty else {
            ticking = false
            return
        }
        for (name, room) in rooms where redis.isReady {
            let clients = room.members.keys.map { Array($0.utf8) }
            let extra = [reapArgument(), Array(String(leaseMs).utf8), Array(String(keepMs).utf8)] + clients
            run(PresenceScripts.refresh, room, extra: extra, script: "refresh") { [self] reply in
                guard case .array(let missing) = reply, let room = rooms[name] else { return }
                for client in missing.compactMap(\.text) {
                    if let held = room.members[client] { sendJoin(room, client: client, member: held.member) }
                }
            }
        }
        loop.schedule(afterMs: tickMs) { [self] in tick() }
    }

    /// Sends one of the scripts for `room` (KEYS: members, leases; ARGV: events, channel JSON,
    /// then `extra`). A failure is logged; the next tick repairs what it left (a lease not
    /// renewed, a member not joined), and a leave not sent lets the lease run out.
    private func run(
        _ script: String, _ room: Room, extra: [[UInt8]], script label: String, _ then: @escaping (RedisReply) -> Void = { _ in }
    ) {
        let arguments: [[UInt8]] =
            .command("EVAL", script, "2", room.keys.members, room.keys.leases, room.keys.events) + [room.channelJSON] + extra
        redis.send(key: Array(room.keys.members.utf8), arguments) { [self] reply in
            if let error = reply.errorMessage {
                stats.presenceErrors.bump()
                logFailure(label, room.channel, error)
            }
            then(reply)
        }
    }

    private func logFailure(_ script: String, _ channel: String, _ error: String) {
        let now = Clock.nowMs()
        if let logged = loggedMs, now - logged < 10_000 { return }
        loggedMs = now
        logger.error("presence script failed", metadata: ["script": "\(script)", "channel": "\(channel)", "error": "\(error)"])
    }

    // MARK: Subscriber

    func deliver(_ delivery: Delivery) {
        guard let name = byEventChannel[delivery.channel], let room = rooms[name] else { return }
        for (_, held) in room.members { held.listener.presenceEvent(delivery.payload) }
    }

    /// Events published while the link was down are gone; members can read presence again.
    func gap(kind: SubscriptionKind, name: RedisName) {}
}
