// Who listens to what on one event loop. Every channel, pattern and shard is subscribed at most
// once in Redis per loop, however many local clients want it: the first local subscriber sends
// SUBSCRIBE, the last one leaving sends UNSUBSCRIBE, and a reconnect re-sends everything.
// Channels and patterns use one subscriber link; in a cluster, sharded channels use one link
// per master, follow their slot when it migrates, and are re-homed when Redis drops them.
import Logging

/// A loop's subscription table and its subscriber links to Redis. Confined to its loop.
public final class Hub {
    private struct Topic {
        var members: [ObjectIdentifier: Subscriber] = [:]
        /// Whether Redis has confirmed the subscription since it was (re)sent.
        var confirmed = false
        /// Run once Redis confirms, by subscriber (dropped when that subscriber leaves).
        var waiters: [(subscriber: ObjectIdentifier, run: () -> Void)] = []
        /// The link dropped while this topic was live; members hear of the gap on re-confirm.
        var lostMessages = false
        /// Which link holds the subscription: `main`, or a master's `host:port`.
        var home: String
    }

    /// A topic, named by the bytes Redis knows it by: compared and hashed as bytes (Swift's
    /// String equality would merge canonically equivalent names such as `é` and `e` + U+0301),
    /// and taken from Redis's messages without a detour through String.
    private struct Key: Hashable {
        let kind: SubscriptionKind
        let name: [UInt8]

        init(kind: SubscriptionKind, name: [UInt8]) {
            self.kind = kind
            self.name = name
        }

        init(kind: SubscriptionKind, name: RedisName) {
            self.init(kind: kind, name: name.bytes)
        }
    }

    static let mainHome = "main"

    private let loop: EventLoop
    private let main: RedisConnection
    private let cluster: ClusterCommands?
    private let logger: Logger
    /// Cluster mode: one subscriber link per master holding sharded channels.
    private var shardLinks: [String: RedisConnection] = [:]
    private var topics: [Key: Topic] = [:]
    /// SUBSCRIBE-family commands sent and not yet confirmed, per topic.
    private var unconfirmed: [Key: Int] = [:]
    /// Messages received from Redis, by kind.
    public private(set) var received: [SubscriptionKind: Int] = [:]
    private var pingSentAt: Int64?
    /// Told whenever the main subscriber link goes up (true) or down (false).
    public var onLinkChange: ((Bool) -> Void)?

    public init(link: RedisConnection, cluster: ClusterCommands?, loop: EventLoop, logger: Logger) {
        self.main = link
        self.cluster = cluster
        self.loop = loop
        self.logger = logger
        wire(link, home: Self.mainHome)
        cluster?.onTopologyChange = { [weak self] in self?.rehome() }
    }

    private func wire(_ link: RedisConnection, home: String) {
        link.onPush = { [unowned self] reply in self.handle(reply, from: home) }
        link.onReady = { [unowned self] in
            self.resubscribe(home)
            if home == Self.mainHome { self.onLinkChange?(true) }
        }
        link.onDown = { [unowned self] _ in
            self.linkLost(home)
            if home == Self.mainHome { self.onLinkChange?(false) }
        }
    }

    public func connect() { main.connect() }

    public func stop() {
        main.stop()
        for link in shardLinks.values { link.stop() }
    }

    /// Every subscriber link that holds subscriptions is up.
    public var isLinkHealthy: Bool {
        main.isReady && shardLinks.values.allSatisfy(\.isReady)
    }

    public var reconnects: Int { shardLinks.values.reduce(main.reconnects) { $0 + $1.reconnects } }
    public var errorReplies: Int { shardLinks.values.reduce(main.errorReplies) { $0 + $1.errorReplies } }

    /// Number of distinct topics of each kind held by this loop.
    public func topicCount(_ kind: SubscriptionKind) -> Int { topics.keys.filter { $0.kind == kind }.count }

    /// Where a topic's subscription belongs now.
    private func home(of key: Key) -> String {
        guard key.kind == .shard, let cluster, let owner = cluster.owner(of: key.name) else { return Self.mainHome }
        return owner
    }

    private func link(_ home: String) -> RedisConnection? {
        if home == Self.mainHome { return main }
        if let link = shardLinks[home] { return link }
        guard let cluster else { return nil }
        let link = RedisConnection(loop: loop, endpoint: cluster.endpoint(for: home), mode: .pushes, logger: logger)
        wire(link, home: home)
        shardLinks[home] = link
        link.connect()
        return link
    }

    /// Adds `subscriber` to each name; `confirmed` runs once Redis has confirmed all of them.
    public func subscribe(_ subscriber: Subscriber, kind: SubscriptionKind, names: [RedisName], confirmed: @escaping () -> Void) {
        loop.assertConfined()
        var fresh: [Key] = []
        var left = names.count
        let countDown = {
            left -= 1; if left == 0 { confirmed() }
        }
        for name in names {
            let key = Key(kind: kind, name: name)
            var topic = topics[key] ?? Topic(home: home(of: key))
            let isNew = topic.members.isEmpty
            if isNew { fresh.append(key) }
            topic.members[ObjectIdentifier(subscriber)] = subscriber
            if topic.confirmed && !isNew {
                topics[key] = topic
                countDown()
            } else {
                topic.waiters.append((ObjectIdentifier(subscriber), countDown))
                topics[key] = topic
            }
        }
        if names.isEmpty { confirmed() }
        send(subscribe: true, fresh)
    }

    /// Removes `subscriber` from each name; the last one leaving unsubscribes in Redis.
    /// `leaving`: the subscriber is gone for good; its pending confirmations are dropped too.
    public func unsubscribe(_ subscriber: Subscriber, kind: SubscriptionKind, names: [RedisName], leaving: Bool = false) {
        loop.assertConfined()
        var emptied: [(Key, String)] = []
        for name in names {
            let key = Key(kind: kind, name: name)
            guard var topic = topics[key] else { continue }
            topic.members[ObjectIdentifier(subscriber)] = nil
            // A confirmation a departed subscriber still waited for would keep it alive.
            if leaving { topic.waiters.removeAll { $0.subscriber == ObjectIdentifier(subscriber) } }
            if topic.members.isEmpty {
                topics[key] = nil
                emptied.append((key, topic.home))
            } else {
                topics[key] = topic
            }
        }
        for (home, group) in Dictionary(grouping: emptied, by: { $0.1 }) {
            guard let link = link(home), link.isReady else { continue }
            for batch in batches(group.map(\.0)) {
                link.send([Array(batch[0].kind.unsubscribeCommand.utf8)] + batch.map(\.name))
            }
        }
    }

    /// SSUBSCRIBE with several names must stay within one hash slot (else CROSSSLOT), so shards
    /// go one per command; channels and patterns go together, per kind.
    private func batches(_ keys: [Key]) -> [[Key]] {
        var result: [[Key]] = []
        for kind in SubscriptionKind.allCases {
            let ofKind = keys.filter { $0.kind == kind }
            if ofKind.isEmpty { continue }
            if kind == .shard { result += ofKind.map { [$0] } } else { result.append(ofKind) }
        }
        return result
    }

    private func send(subscribe: Bool, _ keys: [Key]) {
        for (home, group) in Dictionary(grouping: keys, by: { topics[$0]?.home ?? Self.mainHome }) {
            guard let link = link(home), link.isReady else { continue }
            for batch in batches(group) {
                let command = subscribe ? batch[0].kind.subscribeCommand : batch[0].kind.unsubscribeCommand
                for key in batch { unconfirmed[key, default: 0] += 1 }
                link.send([Array(command.utf8)] + batch.map(\.name))
            }
        }
    }

    private func resubscribe(_ home: String) {
        if home == Self.mainHome { pingSentAt = nil }
        let keys = topics.filter { $0.value.home == home }.map(\.key)
        for key in keys { unconfirmed[key] = nil }
        send(subscribe: true, keys)
    }

    private func linkLost(_ home: String) {
        if home == Self.mainHome { pingSentAt = nil }
        for (key, var topic) in topics where topic.home == home {
            unconfirmed[key] = nil
            topic.lostMessages = topic.lostMessages || topic.confirmed
            topic.confirmed = false
            topics[key] = topic
        }
        if home != Self.mainHome { cluster?.refreshSoon() }
    }

    /// The slot table changed: sharded channels whose slot moved are subscribed at the new
    /// owner (and dropped at the old one); ones Redis dropped are subscribed again.
    private func rehome() {
        var moved: [Key] = []
        for (key, var topic) in topics where key.kind == .shard {
            let now = home(of: key)
            if now != topic.home {
                if let old = shardLinks[topic.home], old.isReady { old.send([Array("SUNSUBSCRIBE".utf8), key.name]) }
                topic.home = now
                // Until the new owner confirms, what is published there reaches no one: the
                // members hear of the gap then (the slot moved, or its master failed over).
                topic.lostMessages = topic.lostMessages || topic.confirmed
                topic.confirmed = false
                topics[key] = topic
                unconfirmed[key] = nil
                moved.append(key)
            } else if !topic.confirmed && (unconfirmed[key] ?? 0) == 0 {
                moved.append(key)
            }
        }
        send(subscribe: true, moved)
        // Links to masters that hold nothing any more are closed.
        let homes = Set(topics.values.map(\.home))
        for (home, link) in shardLinks where !homes.contains(home) {
            link.stop()
            shardLinks[home] = nil
        }
    }

    /// Sends a PING on the main subscriber link and declares it wedged when the previous one got
    /// no answer within `timeoutMs`: a silent link must not keep /readyz green.
    public func checkLink(now: Int64, timeoutMs: Int64) {
        guard main.isReady else { return }
        if let sent = pingSentAt {
            if now - sent > timeoutMs {
                logger.warning("subscriber link wedged", metadata: ["timeoutMs": "\(timeoutMs)"])
                main.restart("no PONG within \(timeoutMs) ms")
            }
            return
        }
        pingSentAt = now
        main.send([Array("PING".utf8)])
    }

    private func handle(_ reply: RedisReply, from home: String) {
        if case .status(let s) = reply, s == "PONG" {
            pingSentAt = nil
            return
        }
        if let error = reply.errorMessage {
            if Redirect(error) != nil {
                // A sharded subscription reached a node that no longer owns the slot.
                cluster?.refreshSoon()
            } else {
                logger.error("redis refused a subscription command", metadata: ["error": "\(error)"])
            }
            return
        }
        guard case .array(let items) = reply, let head = items.first?.text, items.count >= 2 else { return }
        let name = items[1].bytes ?? []
        switch head {
        case "message" where items.count == 3:
            fanOut(
                Key(kind: .channel, name: name),
                Delivery(kind: .channel, channel: items[1].bytes ?? [], payload: items[2].bytes ?? []))
        case "pmessage" where items.count == 4:
            fanOut(
                Key(kind: .pattern, name: name),
                Delivery(kind: .pattern, channel: items[2].bytes ?? [], pattern: items[1].bytes, payload: items[3].bytes ?? []))
        case "smessage" where items.count == 3:
            fanOut(
                Key(kind: .shard, name: name),
                Delivery(kind: .shard, channel: items[1].bytes ?? [], payload: items[2].bytes ?? []))
        case "subscribe": confirm(Key(kind: .channel, name: name))
        case "psubscribe": confirm(Key(kind: .pattern, name: name))
        case "ssubscribe": confirm(Key(kind: .shard, name: name))
        case "sunsubscribe": shardDropped(Key(kind: .shard, name: name), by: home)
        case "pong": pingSentAt = nil
        default: break
        }
    }

    /// Redis sends SUNSUBSCRIBE on its own when a sharded channel's slot leaves the node: if
    /// local clients still want the channel, it is subscribed again wherever the slot went.
    /// What was published to the new owner before that is gone, so members get a `gap`.
    private func shardDropped(_ key: Key, by home: String) {
        guard var topic = topics[key], topic.home == home, (unconfirmed[key] ?? 0) == 0 else { return }
        topic.lostMessages = topic.lostMessages || topic.confirmed
        topic.confirmed = false
        topics[key] = topic
        if let cluster {
            cluster.refreshSoon(delayMs: 0)
        } else {
            send(subscribe: true, [key])
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
        for member in gapped { member.gap(kind: key.kind, name: RedisName(bytes: key.name)) }
        for waiter in waiters { waiter.run() }
    }

    private func fanOut(_ key: Key, _ delivery: Delivery) {
        received[key.kind, default: 0] += 1
        guard let topic = topics[key] else { return }
        for member in topic.members.values { member.deliver(delivery) }
    }
}
