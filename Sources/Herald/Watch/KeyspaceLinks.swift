// The subscriber links that carry keyspace notifications for one loop's watches. Redis sends a
// key's notifications only on the node that holds it (they are not broadcast over a cluster's
// bus), so in a cluster every master gets a link and every watched key and pattern is
// subscribed on each (a key whose slot moves is still heard). Made on the first watch: a loop
// where no one watches opens no link and does no work here.
import Logging

/// A loop's keyspace subscriber links; confined to its loop.
final class KeyspaceLinks {
    private let loop: EventLoop
    private let endpoint: RedisEndpoint
    private let cluster: ClusterCommands?
    private let logger: Logger
    /// `__keyspace@<db>__:`, the prefix of every channel a key's notifications go to.
    private let prefix: [UInt8]
    /// By home: `main` on a single Redis, each master's `host:port` in a cluster.
    private var links: [String: RedisConnection] = [:]
    /// What local watchers want subscribed.
    private var wanted: Set<WatchTarget> = []
    /// SUBSCRIBE-family commands sent and not yet confirmed, per target and home.
    private var unconfirmed: [WatchTarget: [String: Int]] = [:]
    /// Homes that confirmed each target since it was (re)sent there.
    private var confirmedAt: [WatchTarget: Set<String>] = [:]
    /// Notifications received, for metrics.
    private(set) var received = 0

    /// A target is subscribed on every link.
    var onConfirmed: ((WatchTarget) -> Void)?
    /// A link went down: these targets are no longer heard until confirmed again.
    var onLost: (([WatchTarget]) -> Void)?
    /// A notification: `key` had `event` (`set`, `hset`, `del`, `expired`, ...), heard via `target`.
    var onChange: ((_ key: [UInt8], _ event: [UInt8], _ target: WatchTarget) -> Void)?
    /// Under Sentinel: makes each new link follow the master.
    var prepare: ((RedisConnection) -> Void)?

    init(loop: EventLoop, endpoint: RedisEndpoint, cluster: ClusterCommands?, logger: Logger) {
        self.loop = loop
        self.endpoint = endpoint
        self.cluster = cluster
        self.logger = logger
        prefix = Array("__keyspace@\(cluster == nil ? endpoint.database : 0)__:".utf8)
    }

    /// Every link, for readiness and reconnect counts.
    var all: [RedisConnection] { Array(links.values) }

    func stop() {
        for link in links.values { link.stop() }
        links = [:]
    }

    /// Whether `target` is heard on every link now.
    func isConfirmed(_ target: WatchTarget) -> Bool {
        !links.isEmpty && confirmedAt[target, default: []].isSuperset(of: links.keys)
    }

    /// Subscribes each target on every link (each once, however often asked).
    func add(_ targets: [WatchTarget]) {
        let fresh = targets.filter { wanted.insert($0).inserted }
        guard !fresh.isEmpty else { return }
        openLinks()
        for (home, link) in links where link.isReady { send(subscribe: true, fresh, home: home, link) }
    }

    /// Unsubscribes each target on every link.
    func remove(_ targets: [WatchTarget]) {
        let gone = targets.filter { wanted.remove($0) != nil }
        for target in gone {
            confirmedAt[target] = nil
        }
        for (home, link) in links where link.isReady { send(subscribe: false, gone, home: home, link) }
    }

    /// The homes links should exist for: the masters of the cluster's table, or `main`.
    private var homes: [String] {
        guard let cluster else { return ["main"] }
        return cluster.map?.nodes ?? []
    }

    /// Opens a link to each home that has none (first watch; a new master); closes links to
    /// masters that left the table.
    func openLinks() {
        let current = Set(homes)
        for home in current where links[home] == nil {
            let target = home == "main" ? endpoint : (cluster?.endpoint(for: home) ?? endpoint)
            let link = RedisConnection(loop: loop, endpoint: target, mode: .pushes, logger: logger)
            link.onPush = { [unowned self] reply in self.handle(reply, from: home) }
            link.onReady = { [unowned self, unowned link] in self.send(subscribe: true, Array(self.wanted), home: home, link) }
            link.onDown = { [unowned self] _ in self.lost(home) }
            links[home] = link
            prepare?(link)
            link.connect()
        }
        for (home, link) in links where !current.contains(home) {
            link.stop()
            links[home] = nil
            lost(home)
        }
    }

    /// The cluster's table changed: links follow its masters. A target already confirmed
    /// everywhere else is confirmed once the new master confirms it too.
    func topologyChanged() {
        guard !wanted.isEmpty || !links.isEmpty else { return }
        openLinks()
    }

    private func channel(_ target: WatchTarget) -> [UInt8] {
        switch target {
        case .key(let key): prefix + key
        case .pattern(let pattern): prefix + pattern
        }
    }

    private func send(subscribe: Bool, _ targets: [WatchTarget], home: String, _ link: RedisConnection) {
        let keys = targets.filter { if case .key = $0 { true } else { false } }
        let patterns = targets.filter { if case .pattern = $0 { true } else { false } }
        for (group, command) in [(keys, subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE"), (patterns, subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE")] {
            guard !group.isEmpty else { continue }
            // In batches: one command of a million arguments would be one huge allocation.
            for start in stride(from: 0, to: group.count, by: 500) {
                let batch = group[start..<min(start + 500, group.count)]
                if subscribe {
                    for target in batch { unconfirmed[target, default: [:]][home, default: 0] += 1 }
                }
                link.send([Array(command.utf8)] + batch.map(channel))
            }
        }
    }

    private func lost(_ home: String) {
        var lost: [WatchTarget] = []
        for target in wanted {
            unconfirmed[target]?[home] = nil
            if confirmedAt[target]?.remove(home) != nil { lost.append(target) }
        }
        if cluster != nil { cluster?.refreshSoon() }
        if !lost.isEmpty { onLost?(lost) }
    }

    private func handle(_ reply: RedisReply, from home: String) {
        if let error = reply.errorMessage {
            logger.error("redis refused a keyspace subscription", metadata: ["error": "\(error)", "node": "\(home)"])
            return
        }
        guard case .array(let items) = reply, let head = items.first?.text, items.count >= 2, let name = items[1].bytes else { return }
        switch head {
        case "message" where items.count == 3:
            guard let key = stripped(name) else { return }
            received += 1
            onChange?(key, items[2].bytes ?? [], .key(key))
        case "pmessage" where items.count == 4:
            guard let pattern = stripped(name), let key = stripped(items[2].bytes ?? []) else { return }
            received += 1
            onChange?(key, items[3].bytes ?? [], .pattern(pattern))
        case "subscribe":
            if let key = stripped(name) { confirm(.key(key), home: home) }
        case "psubscribe":
            if let pattern = stripped(name) { confirm(.pattern(pattern), home: home) }
        default:
            break
        }
    }

    private func stripped(_ channel: [UInt8]) -> [UInt8]? {
        channel.starts(with: prefix) ? Array(channel[prefix.count...]) : nil
    }

    private func confirm(_ target: WatchTarget, home: String) {
        let left = (unconfirmed[target]?[home] ?? 1) - 1
        unconfirmed[target]?[home] = left > 0 ? left : nil
        if unconfirmed[target]?.isEmpty == true { unconfirmed[target] = nil }
        guard left <= 0, wanted.contains(target) else { return }
        let wasConfirmed = isConfirmed(target)
        confirmedAt[target, default: []].insert(home)
        if !wasConfirmed && isConfirmed(target) { onConfirmed?(target) }
    }
}
