// One event loop and everything it owns: its listener, its client connections, its Redis
// command link, its subscriber link and Hub. Shared nothing: no other thread touches these.
import Glibc
import Logging

/// A loop's world; every method runs on the loop's thread.
public final class Worker: IOHandler {
    public let index: Int
    public let loop: EventLoop
    public let config: Config
    public let logger: Logger
    public let stats: LoopStats
    public let process: ProcessStats
    /// Pipelined commands (PUBLISH, SPUBLISH, ...).
    public let commands: RedisConnection
    /// Where keyed commands go (the command link, or the slot owner in a cluster).
    public var redis: CommandSender { commands }
    /// Capped connections for blocking pops.
    public let blocking: BlockingPool
    /// The loop's one blocking XREAD over every tailed stream.
    public let tailer: StreamTailer
    public let hub: Hub
    let router: Router
    private let listener: Int32
    private var connections: [ObjectIdentifier: ClientConnection] = [:]
    private var pendingFlushes: [ClientConnection] = []
    /// Shared read space for client sockets: bytes are copied out only when a message is partial.
    let readScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
    public private(set) var isDraining = false
    private var drainDeadline: Int64 = 0
    private var acceptPausedUntil: Int64 = 0

    public init(index: Int, listener: Int32, handle: LoopHandle, config: Config, process: ProcessStats, logger: Logger) throws {
        self.index = index
        self.listener = listener
        self.config = config
        self.process = process
        self.stats = process.loops[index]
        var logger = logger
        logger[metadataKey: "loop"] = "\(index)"
        self.logger = logger
        loop = try EventLoop(handle: handle)
        let endpoint = config.redis[0]
        commands = RedisConnection(loop: loop, endpoint: endpoint, mode: .commands, logger: logger)
        hub = Hub(link: RedisConnection(loop: loop, endpoint: endpoint, mode: .pushes, logger: logger), logger: logger)
        router = Router(config: config)
        blocking = BlockingPool(loop: loop, endpoint: endpoint, capacity: config.maxBlocking, logger: logger)
        tailer = StreamTailer(loop: loop, link: RedisConnection(loop: loop, endpoint: endpoint, mode: .commands, logger: logger,
                                                                replyTimeoutMs: Int64(StreamTailer.blockMs) + 10_000),
                              control: commands, logger: logger)
        let stats = self.stats
        commands.onReady = { stats.commandLinkUp.set(1) }
        commands.onDown = { _ in stats.commandLinkUp.set(0) }
        hub.onLinkChange = { up in stats.subscriberLinkUp.set(up ? 1 : 0) }
        try loop.register(fd: listener, handler: self, events: IOEvents.readable)
        loop.onStopRequested = { [unowned self] in self.beginDrain() }
    }

    deinit { readScratch.deallocate() }

    /// Runs the loop until drained.
    public func run() {
        commands.connect()
        hub.redisLink.connect()
        tailer.redisLink.connect()
        scheduleHousekeeping()
        loop.run()
        commands.stop()
        hub.redisLink.stop()
        blocking.stop()
        tailer.redisLink.stop()
    }

    /// The listener is readable: accept everything pending.
    public func handleEvents(_ events: UInt32) {
        guard !isDraining else { return }
        while true {
            do {
                guard let fd = try Socket.accept(listener) else { return }
                let connection = ClientConnection(fd: fd, worker: self)
                do {
                    try loop.register(fd: fd, handler: connection, events: IOEvents.readable)
                } catch {
                    Socket.close(fd)
                    continue
                }
                connections[ObjectIdentifier(connection)] = connection
                stats.httpConnections.bump()
            } catch {
                // Out of descriptors (EMFILE/ENFILE): stop accepting for a moment rather than spin.
                logger.warning("accept failed; pausing accepts for 100 ms", metadata: ["error": "\(error)"])
                loop.unregister(fd: listener)
                loop.schedule(afterMs: 100) { [weak self] in
                    guard let self, !self.isDraining else { return }
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
                let batch = self.pendingFlushes
                self.pendingFlushes = []
                for connection in batch { connection.flush() }
            }
        }
        pendingFlushes.append(connection)
    }

    private func scheduleHousekeeping() {
        loop.schedule(afterMs: min(500, config.pingIntervalMs / 2, config.headerTimeoutMs / 2)) { [weak self] in
            guard let self else { return }
            self.housekeeping()
            self.scheduleHousekeeping()
        }
    }

    private func housekeeping() {
        let now = Clock.nowMs()
        for connection in Array(connections.values) { connection.checkTimers(now: now) }
        commands.checkTimeouts(now: now)
        blocking.checkTimeouts(now: now)
        tailer.redisLink.checkTimeouts(now: now)
        hub.checkLink(now: now, timeoutMs: 5000)
        stats.commandLinkUp.set(commands.isReady ? 1 : 0)
        stats.subscriberLinkUp.set(hub.isLinkHealthy ? 1 : 0)
        stats.channels.set(hub.topicCount(.channel))
        stats.patterns.set(hub.topicCount(.pattern))
        stats.shards.set(hub.topicCount(.shard))
        stats.redisReconnects.set(commands.reconnects + hub.redisLink.reconnects)
        stats.received.set(hub.received)
        if isDraining {
            if (connections.isEmpty && commands.pendingCount == 0) || now > drainDeadline {
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
        loop.schedule(afterMs: 20) { [weak self] in
            guard let self, self.isDraining else { return }
            self.housekeeping()
            self.housekeepingSoon()
        }
    }
}
