// Who listens to what on one event loop. Every channel, pattern and shard is subscribed at most
// once in Redis per loop, however many local clients want it: the first local subscriber sends
// SUBSCRIBE, the last one leaving sends UNSUBSCRIBE, and a reconnect re-sends everything.
import Logging

/// A loop's subscription table and its subscriber connection to Redis. Confined to its loop.
public final class Hub {
    private struct Topic {
        var members: [ObjectIdentifier: Subscriber] = [:]
        /// Whether Redis has confirmed the subscription since it was (re)sent.
        var confirmed = false
        /// Run once Redis confirms.
        var waiters: [() -> Void] = []
        /// The link dropped while this topic was live; members hear of the gap on re-confirm.
        var lostMessages = false
    }

    private struct Key: Hashable {
        let kind: SubscriptionKind
        let name: String
    }

    private let link: RedisConnection
    private let logger: Logger
    private var topics: [Key: Topic] = [:]
    /// SUBSCRIBE-family commands sent and not yet confirmed, per topic.
    private var unconfirmed: [Key: Int] = [:]
    /// Messages delivered to local subscribers (one per subscriber).
    public private(set) var deliveries = 0
    /// Messages received from Redis.
    public private(set) var received = 0
    private var pingSentAt: Int64?

    /// Told whenever the subscriber link goes up (true) or down (false).
    public var onLinkChange: ((Bool) -> Void)?

    public init(link: RedisConnection, logger: Logger) {
        self.link = link
        self.logger = logger
        link.onPush = { [unowned self] reply in self.handle(reply) }
        link.onReady = { [unowned self] in
            self.resubscribeAll()
            self.onLinkChange?(true)
        }
        link.onDown = { [unowned self] _ in
            self.linkLost()
            self.onLinkChange?(false)
        }
    }

    public var isLinkHealthy: Bool { link.isReady }
    public var redisLink: RedisConnection { link }

    /// Number of distinct topics of each kind held by this loop.
    public func topicCount(_ kind: SubscriptionKind) -> Int { topics.keys.filter { $0.kind == kind }.count }

    /// Adds `subscriber` to each name; `confirmed` runs once Redis has confirmed all of them.
    public func subscribe(_ subscriber: Subscriber, kind: SubscriptionKind, names: [String], confirmed: @escaping () -> Void) {
        var fresh: [String] = []
        var left = names.count
        let countDown = { left -= 1; if left == 0 { confirmed() } }
        for name in names {
            let key = Key(kind: kind, name: name)
            var topic = topics[key] ?? Topic()
            if topic.members.isEmpty { fresh.append(name) }
            topic.members[ObjectIdentifier(subscriber)] = subscriber
            if topic.confirmed && !fresh.contains(name) {
                topics[key] = topic
                countDown()
            } else {
                topic.waiters.append(countDown)
                topics[key] = topic
            }
        }
        if names.isEmpty { confirmed() }
        send(kind.subscribeCommand, kind: kind, names: fresh)
    }

    /// Removes `subscriber` from each name; the last one leaving unsubscribes in Redis.
    public func unsubscribe(_ subscriber: Subscriber, kind: SubscriptionKind, names: [String]) {
        var emptied: [String] = []
        for name in names {
            let key = Key(kind: kind, name: name)
            guard var topic = topics[key] else { continue }
            topic.members[ObjectIdentifier(subscriber)] = nil
            if topic.members.isEmpty {
                topics[key] = nil
                emptied.append(name)
            } else {
                topics[key] = topic
            }
        }
        guard !emptied.isEmpty, link.isReady else { return }
        var arguments = [Array(kind.unsubscribeCommand.utf8)]
        arguments.append(contentsOf: emptied.map { Array($0.utf8) })
        link.send(arguments)
    }

    private func send(_ command: String, kind: SubscriptionKind, names: [String]) {
        guard !names.isEmpty, link.isReady else { return }
        // SSUBSCRIBE with several names must stay within one hash slot (else CROSSSLOT), so
        // shards go one per command; channels and patterns go together.
        let batches = kind == .shard ? names.map { [$0] } : [names]
        for batch in batches {
            var arguments = [Array(command.utf8)]
            for name in batch {
                arguments.append(Array(name.utf8))
                unconfirmed[Key(kind: kind, name: name), default: 0] += 1
            }
            link.send(arguments)
        }
    }

    private func resubscribeAll() {
        unconfirmed = [:]
        pingSentAt = nil
        for kind in SubscriptionKind.allCases {
            let names = topics.keys.filter { $0.kind == kind }.map(\.name)
            send(kind.subscribeCommand, kind: kind, names: names)
        }
    }

    private func linkLost() {
        unconfirmed = [:]
        pingSentAt = nil
        for (key, var topic) in topics {
            topic.lostMessages = topic.lostMessages || topic.confirmed
            topic.confirmed = false
            topics[key] = topic
        }
    }

    /// Sends a PING on the subscriber link and declares it wedged when the previous one got no
    /// answer within `timeoutMs`: a silent link must not keep /readyz green.
    public func checkLink(now: Int64, timeoutMs: Int64) {
        guard link.isReady else { return }
        if let sent = pingSentAt {
            if now - sent > timeoutMs {
                logger.warning("subscriber link wedged", metadata: ["timeoutMs": "\(timeoutMs)"])
                link.restart("no PONG within \(timeoutMs) ms")
            }
            return
        }
        pingSentAt = now
        link.send([Array("PING".utf8)])
    }

    private func handle(_ reply: RedisReply) {
        if case .status(let s) = reply, s == "PONG" {
            pingSentAt = nil
            return
        }
        if let error = reply.errorMessage {
            logger.error("redis refused a subscription command", metadata: ["error": "\(error)"])
            return
        }
        guard case .array(let items) = reply, let head = items.first?.text else { return }
        switch head {
        case "message" where items.count == 3:
            fanOut(Key(kind: .channel, name: items[1].text ?? ""),
                   Delivery(kind: .channel, channel: items[1].bytes ?? [], payload: items[2].bytes ?? []))
        case "pmessage" where items.count == 4:
            fanOut(Key(kind: .pattern, name: items[1].text ?? ""),
                   Delivery(kind: .pattern, channel: items[2].bytes ?? [], pattern: items[1].bytes, payload: items[3].bytes ?? []))
        case "smessage" where items.count == 3:
            fanOut(Key(kind: .shard, name: items[1].text ?? ""),
                   Delivery(kind: .shard, channel: items[1].bytes ?? [], payload: items[2].bytes ?? []))
        case "subscribe": confirm(Key(kind: .channel, name: items[1].text ?? ""))
        case "psubscribe": confirm(Key(kind: .pattern, name: items[1].text ?? ""))
        case "ssubscribe": confirm(Key(kind: .shard, name: items[1].text ?? ""))
        case "pong": pingSentAt = nil
        default: break
        }
    }

    private func confirm(_ key: Key) {
        let left = (unconfirmed[key] ?? 1) - 1
        unconfirmed[key] = left > 0 ? left : nil
        guard left <= 0, var topic = topics[key], !topic.confirmed else { return }
        topic.confirmed = true
        let waiters = topic.waiters
        let gapped = topic.lostMessages ? Array(topic.members.values) : []
        topic.waiters = []
        topic.lostMessages = false
        topics[key] = topic
        for member in gapped { member.gap(kind: key.kind, name: key.name) }
        for waiter in waiters { waiter() }
    }

    private func fanOut(_ key: Key, _ delivery: Delivery) {
        received += 1
        guard let topic = topics[key] else { return }
        for member in topic.members.values { member.deliver(delivery) }
        deliveries += topic.members.count
    }
}
