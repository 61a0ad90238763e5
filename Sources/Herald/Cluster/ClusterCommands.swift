// Keyed commands in a Redis Cluster: one pipelined connection per master, the slot table read
// with CLUSTER SLOTS, MOVED redirects applied and followed, ASK redirects followed once with
// ASKING, and the table refreshed after any redirect or lost node.
import Logging

/// A loop's command links to every master of a cluster; confined to its loop.
public final class ClusterCommands: CommandSender {
    private let loop: EventLoop
    private let seeds: [RedisEndpoint]
    private let logger: Logger
    public private(set) var map: ClusterMap?
    private var links: [String: RedisConnection] = [:]
    /// The link CLUSTER SLOTS is asked on (a seed, until the table names the masters).
    private var probe: RedisConnection?
    private var nextSeed = 0
    private var refreshing = false
    private var refreshQueued = false
    public private(set) var lastError = "cluster slots not read yet"
    /// Told after each successful table refresh (shard subscriptions may need to move).
    public var onTopologyChange: (() -> Void)?
    /// Told when readiness may have changed.
    public var onStateChange: (() -> Void)?

    public init(loop: EventLoop, seeds: [RedisEndpoint], logger: Logger) {
        self.loop = loop
        self.seeds = seeds
        self.logger = logger
    }

    public var isReady: Bool {
        guard let map, map.coversAllSlots, !links.isEmpty else { return false }
        return map.nodes.allSatisfy { links[$0]?.isReady ?? false }
    }

    public var pendingCount: Int { links.values.reduce(0) { $0 + $1.pendingCount } }
    public var reconnects: Int { links.values.reduce(0) { $0 + $1.reconnects } }
    public var errorReplies: Int { links.values.reduce(0) { $0 + $1.errorReplies } }

    /// The master serving `key`'s slot, as `host:port`.
    public func owner(of key: [UInt8]) -> String? { map?.owner(of: SlotHash.slot(key)) }

    /// Credentials and address for a node of this cluster.
    public func endpoint(for address: String) -> RedisEndpoint { seeds[0].node(address) }

    public func connect() { refresh() }

    public func stop() {
        probe?.stop()
        for link in links.values { link.stop() }
    }

    public func checkTimeouts(now: Int64) {
        for link in links.values { link.checkTimeouts(now: now) }
    }

    /// Re-reads the slot table soon (coalesced).
    public func refreshSoon(delayMs: Int64 = 50) {
        guard !refreshQueued else { return }
        refreshQueued = true
        loop.schedule(afterMs: delayMs) { [weak self] in
            guard let self else { return }
            self.refreshQueued = false
            self.refresh()
        }
    }

    private func refresh() {
        guard !refreshing else { return }
        refreshing = true
        if let ready = links.values.first(where: \.isReady) {
            askSlots(on: ready)
            return
        }
        // No master is reachable: start from a seed.
        probe?.stop()
        let seed = seeds[nextSeed % seeds.count]
        nextSeed += 1
        let link = RedisConnection(loop: loop, endpoint: seed, mode: .commands, logger: logger)
        probe = link
        link.onReady = { [unowned self, unowned link] in self.askSlots(on: link) }
        link.onDown = { [unowned self, unowned link] reason in
            self.lastError = "seed \(seed): \(reason)"
            link.stop()
            self.refreshing = false
            self.loop.schedule(afterMs: 500) { [weak self] in self?.refresh() }
        }
        link.connect()
    }

    private func askSlots(on link: RedisConnection) {
        let asked = link.send(.command("CLUSTER", "SLOTS")) { [weak self] reply in
            guard let self else { return }
            self.refreshing = false
            if let probe = self.probe, probe === link {
                self.probe = nil
                probe.onDown = nil
                probe.stop()
            }
            guard let map = ClusterMap(slotsReply: reply) else {
                self.lastError = "CLUSTER SLOTS: \(reply.errorMessage ?? reply.linkLoss?.reason ?? "unexpected reply")"
                self.loop.schedule(afterMs: 1000) { [weak self] in self?.refresh() }
                return
            }
            self.apply(map)
        }
        if !asked {
            refreshing = false
            refreshSoon()
        }
    }

    private func apply(_ map: ClusterMap) {
        self.map = map
        for address in map.nodes where links[address] == nil {
            let link = RedisConnection(loop: loop, endpoint: endpoint(for: address), mode: .commands, logger: logger)
            link.onReady = { [weak self] in self?.onStateChange?() }
            link.onDown = { [weak self] reason in
                self?.lastError = "\(address): \(reason)"
                self?.onStateChange?()
                self?.refreshSoon()
            }
            links[address] = link
            link.connect()
        }
        for (address, link) in links where !map.nodes.contains(address) {
            link.stop()
            links[address] = nil
        }
        if !map.coversAllSlots { lastError = "the cluster does not cover every slot" }
        onStateChange?()
        onTopologyChange?()
    }

    @discardableResult
    public func send(key: [UInt8]?, _ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) -> Bool {
        guard let map else { return false }
        let address = key.map { map.owner(of: SlotHash.slot($0)) } ?? map.nodes.first
        guard let address, let link = links[address], link.isReady else { return false }
        return dispatch(link, arguments, asking: false, redirects: 0, callback)
    }

    /// Sends a command meant for one node (CLIENT UNBLOCK of a connection there), unredirected.
    @discardableResult
    public func send(node address: String, _ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) -> Bool {
        guard let link = links[address], link.isReady else { return false }
        return link.send(arguments, callback)
    }

    private func dispatch(
        _ link: RedisConnection, _ arguments: [[UInt8]], asking: Bool, redirects: Int,
        _ callback: @escaping (RedisReply) -> Void
    ) -> Bool {
        if asking { link.send(.command("ASKING")) { _ in } }
        return link.send(arguments) { [weak self] reply in
            guard let self, let error = reply.errorMessage, let redirect = Redirect(error), redirects < 5 else {
                callback(reply)
                return
            }
            if redirect.kind == .moved {
                self.map?.moved(slot: redirect.slot, to: redirect.address)
                self.refreshSoon()
            }
            guard let target = self.links[redirect.address], target.isReady,
                self.dispatch(target, arguments, asking: redirect.kind == .ask, redirects: redirects + 1, callback)
            else {
                // Not sent there: the node that answered with the redirect did not run it either.
                callback(.linkLost(.notSent("the node \(redirect.address) that holds the slot is not connected yet")))
                return
            }
        }
    }
}
