// One loop's context: its event loop and everything it owns (its listener, its client
// connections, its Redis links, Hub, stream tail, blocking pool and queue leases), and the
// services it builds from them for the API layer (LoopServices). Shared nothing: no other
// thread touches these.
import CHiredis
import Glibc
import Logging

/// One loop's context; every method runs on the loop's thread.
public final class LoopContext: IOHandler {
    private let index: Int
    let loop: EventLoop
    let config: Config
    let logger: Logger
    let stats: LoopStats
    private let process: ProcessStats
    /// Where commands go, pipelined: the command link, or in a cluster the slot owner's link.
    private let redis: CommandSender
    /// The cluster's slot table and links, in cluster mode.
    private let cluster: ClusterCommands?
    /// Capped connections for blocking pops.
    private let blocking: BlockingPool
    /// Leases on queue workers' processing lists (see QueueLeases).
    private let queueLeases: QueueLeases
    /// The loop's one blocking XREAD over every tailed stream.
    private let tailer: StreamTailer
    /// Under Sentinel: where the master is now, for every link of this loop.
    private let locator: SentinelLocator?
    private let hub: Hub
    /// Watched keys (their links open on the first watch).
    private let watches: WatchRegistry
    let router: Router
    private let listener: Int32
    private var connections: [ObjectIdentifier: ClientConnection] = [:]
    private var pendingFlushes: [ClientConnection] = []
    /// The list being flushed this tick (connections queued meanwhile go to `pendingFlushes`).
    private var flushing: [ClientConnection] = []
    /// Shared read space for client sockets: bytes are copied out only when a message is partial.
    let readScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
    public private(set) var isDraining = false
    /// The drain's 5 s are up: pops still waiting are cut short and answered 503.
    /// Set when the drain runs out of time; pops it cut short answer 503.
    private let drain = DrainClock()
    /// Frames queued to clients, and deliveries dropped for slow ones: plain counters on the
    /// hot path, published to `stats` by housekeeping.
    var deliveredCount = 0
    var droppedCount = 0
    /// permessage-deflate: compressed frames queued to clients, bytes, and what the same frames
    /// would have taken uncompressed (hot-path counters, published by housekeeping).
    var compressedBytes = 0
    var uncompressedBytes = 0
    /// Compresses this loop's outbound messages for clients that agreed to permessage-deflate.
    let compressor: MessageCompressor
    /// Inflates the messages of this loop's clients that compress each message on its own
    /// (client_no_context_takeover): one zlib state for all of them, made on first use.
    let sharedInflater = MessageInflater(contextTakeover: false)
    /// Monotonic ms when the drain's wait for in-flight work ends.
    private var drainDeadline: Int64 = 0
    /// A connection that held a large queue emptied or closed: give freed heap back to the
    /// kernel at the next housekeeping (glibc keeps freed pages in its arenas otherwise).
    private var memoryToTrim = false
    /// Monotonic ms when the loop stops whatever is left, a moment after `drainDeadline`.
    private var stopDeadline: Int64 = 0

    public init(index: Int, listener: Int32, handle: LoopHandle, config: Config, process: ProcessStats, logger: Logger) throws {
        self.index = index
        self.listener = listener
        self.config = config
        self.process = process
        self.stats = process.loops[index]
        compressor = MessageCompressor(minSize: config.compressionMin)
        var logger = logger
        logger[metadataKey: "loop"] = "\(index)"
        self.logger = logger
        loop = try EventLoop(handle: handle)
        let loop = self.loop
        locator = config.sentinel.map { SentinelLocator(loop: loop, target: $0, sentinelPassword: config.sentinelPassword, logger: logger) }
        let endpoint = config.redis[0]
        let commandLink: RedisConnection?
        if config.redisCluster {
            let cluster = ClusterCommands(loop: loop, seeds: config.redis, logger: logger)
            self.cluster = cluster
            redis = cluster
            commandLink = nil
        } else {
            cluster = nil
            commandLink = RedisConnection(loop: loop, endpoint: endpoint, mode: .commands, logger: logger)
            redis = commandLink!
        }
        let hubLink = RedisConnection(loop: loop, endpoint: endpoint, mode: .pushes, logger: logger)
        hub = Hub(link: hubLink, cluster: cluster, loop: loop, logger: logger)
        queueLeases = QueueLeases(redis: redis, loop: loop, leaseMs: config.queueLeaseMs, logger: logger)
        blocking = BlockingPool(
            loop: loop, endpoint: endpoint, capacity: config.maxBlocking, idleMs: config.blockingIdleMs,
            control: redis, cluster: cluster, logger: logger)
        // One blocking XREAD per loop on a standalone Redis; a cluster refuses XREAD across
        // slots, so there the tail polls each slot's streams instead.
        let tailLink =
            cluster == nil
            ? RedisConnection(
                loop: loop, endpoint: endpoint, mode: .commands, logger: logger,
                replyTimeoutMs: Int64(StreamTailer.blockMs) + 10_000) : nil
        tailer = StreamTailer(loop: loop, link: tailLink, sender: redis, logger: logger)
        let services = LoopServices(
            config: config, loop: loop, logger: logger, stats: stats, process: process, redis: redis, hub: hub,
            tailer: tailer, blocking: blocking, leases: queueLeases, drain: drain)
        watches = services.watches
        router = Router(config: config, services: services)
        let stats = self.stats
        let redis = self.redis
        if let commandLink {
            commandLink.onReady = { stats.commandLinkUp.set(1) }
            commandLink.onDown = { reason in
                stats.commandLinkError.withLock { $0 = reason }
                stats.commandLinkUp.set(0)
            }
        }
        cluster?.onStateChange = {
            if !redis.isReady { stats.commandLinkError.withLock { $0 = redis.lastError } }
            stats.commandLinkUp.set(redis.isReady ? 1 : 0)
        }
        hub.onLinkChange = { up in
            if !up { stats.subscriberLinkError.withLock { $0 = hubLink.lastError } }
            stats.subscriberLinkUp.set(up ? 1 : 0)
        }
        if let locator = self.locator {
            // After the owners' callbacks are set: `follow` adds to their onDown.
            for link in [commandLink, hubLink, tailLink].compactMap({ $0 }) { locator.follow(link) }
            blocking.prepare = { [unowned locator] link in locator.follow(link) }
            watches.prepare = { [unowned locator] link in locator.follow(link) }
            let blocking = self.blocking
            let watches = self.watches
            locator.onMasterChange = { master in
                let reason = "the master moved to \(master)"
                for link in [commandLink, hubLink, tailLink].compactMap({ $0 }) { link.relocate(reason) }
                blocking.relocate(to: master, reason)
                watches.relocate(reason)
            }
        }
        try loop.register(fd: listener, handler: self, events: IOEvents.readable)
        loop.onStopRequested = { [unowned self] in self.beginDrain() }
    }

    deinit { readScratch.deallocate() }

    /// Runs the loop until drained.
    public func run() {
        locator?.start()
        redis.connect()
        hub.connect()
        tailer.connect()
        scheduleHousekeeping()
        loop.run()
        redis.stop()
        hub.stop()
        watches.stop()
        blocking.stop()
        tailer.stop()
        locator?.stop()
    }

    /// The listener is readable: accept everything pending.
    public func handleEvents(_ events: UInt32) {
        guard !isDraining else { return }
        while true {
            do {
                guard let fd = try Socket.accept(listener, sendBuffer: Int32(min(config.maxOutbound, 256 * 1024))) else { return }
                let connection = ClientConnection(fd: fd, context: self)
                do {
                    try loop.register(fd: fd, handler: connection, events: IOEvents.readable)
                } catch {
                    Socket.close(fd)
                    continue
                }
                connection.overLimit =
                    process.total({ $0.httpConnections.value + $0.webSocketConnections.value + $0.eventStreams.value }) >= config.maxConnections
                connections[ObjectIdentifier(connection)] = connection
                stats.httpConnections.bump()
            } catch {
                // Out of descriptors (EMFILE/ENFILE): stop accepting for a moment rather than spin.
                logger.warning("accept failed; pausing accepts for 100 ms", metadata: ["error": "\(error)"])
                loop.unregister(fd: listener)
                loop.schedule(afterMs: 100) { [unowned self] in
                    guard !self.isDraining else { return }
                    try? self.loop.register(fd: self.listener, handler: self, events: IOEvents.readable)
                }
                return
            }
        }
    }

    func remove(_ connection: ClientConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }

    /// Flushes a connection's output at the end of this tick, once, however much was queued.
    func queueFlush(_ connection: ClientConnection) {
        if pendingFlushes.isEmpty {
            loop.deferToEndOfTick { [unowned self] in
                // Two lists traded each tick, so a fan-out to thousands reuses their storage
                // instead of growing a fresh array every message.
                swap(&self.flushing, &self.pendingFlushes)
                for connection in self.flushing { connection.flush() }
                self.flushing.removeAll(keepingCapacity: true)
            }
        }
        pendingFlushes.append(connection)
    }

    func trimMemorySoon() {
        memoryToTrim = true
    }

    private func scheduleHousekeeping() {
        loop.schedule(afterMs: min(500, config.pingIntervalMs / 2, config.headerTimeoutMs / 2)) { [unowned self] in
            self.housekeeping()
            self.scheduleHousekeeping()
        }
    }

    private func housekeeping() {
        let now = Clock.nowMs()
        for connection in Array(connections.values) { connection.checkTimers(now: now) }
        if memoryToTrim {
            memoryToTrim = false
            malloc_trim(0)
        }
        redis.checkTimeouts(now: now)
        blocking.checkTimeouts(now: now)
        tailer.checkTimeouts(now: now)
        hub.checkLink(now: now, timeoutMs: 5000)
        if let locator {
            locator.checkTimeouts(now: now)
            stats.setRedisStatus(locator.status)
        }
        stats.commandLinkUp.set(redis.isReady ? 1 : 0)
        stats.subscriberLinkUp.set(hub.isLinkHealthy ? 1 : 0)
        stats.channels.set(hub.topicCount(.channel))
        stats.patterns.set(hub.topicCount(.pattern))
        stats.shards.set(hub.topicCount(.shard))
        stats.redisReconnects.set(redis.reconnects + hub.reconnects + watches.subscriberLinks.reduce(0) { $0 + $1.reconnects })
        stats.delivered.set(deliveredCount)
        stats.dropped.set(droppedCount)
        stats.compressions.set(compressor.compressions)
        stats.compressedBytes.set(compressedBytes)
        stats.uncompressedBytes.set(uncompressedBytes)
        stats.receivedChannel.set(hub.received[.channel] ?? 0)
        stats.receivedPattern.set(hub.received[.pattern] ?? 0)
        stats.receivedShard.set(hub.received[.shard] ?? 0)
        stats.redisErrors.set(redis.errorReplies + hub.errorReplies)
        stats.queueLeaseErrors.set(queueLeases.scriptErrors)
        if isDraining {
            let done = connections.isEmpty && redis.pendingCount == 0 && blocking.busyCount == 0
            if !done && !drain.expired && now > drainDeadline {
                // Waits still pending end now, so their clients hear 503 rather than a dropped
                // connection, and an item popped meanwhile is answered or put back: given a
                // moment to reach Redis and the clients before the loop stops.
                drain.expire()
                stopDeadline = now + 1000
                blocking.cancelAll()
            } else if done || (drain.expired && now > stopDeadline) {
                for connection in Array(connections.values) { connection.close() }
                loop.stop()
            }
        }
    }

    /// SIGTERM: stop accepting, answer what is in flight, close WebSockets with 1001.
    private func beginDrain() {
        guard !isDraining else { return }
        isDraining = true
        drainDeadline = Clock.nowMs() + 5000
        loop.unregister(fd: listener)
        Socket.close(listener)
        for connection in Array(connections.values) { connection.beginDrain() }
        housekeepingSoon()
    }

    private func housekeepingSoon() {
        loop.schedule(afterMs: 20) { [unowned self] in
            guard self.isDraining else { return }
            self.housekeeping()
            self.housekeepingSoon()
        }
    }
}
