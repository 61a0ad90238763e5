// One non-blocking Redis connection driven by its event loop through hiredis: hiredis formats
// every command (redisAppendCommandArgv) and parses every reply (its reader); the loop owns the
// socket, and on a rediss:// link runs the bytes through TLS (RedisTransport). Reconnects with
// capped exponential backoff and jitter, and logs in (AUTH, SELECT) before anything else is sent.
import CHiredis
import Glibc
import Logging

/// A Redis link owned by one event loop; every method runs on that loop's thread.
public final class RedisConnection: IOHandler {
    public enum Mode {
        /// Replies answer commands in order; each command carries its callback.
        case commands
        /// Replies are pushes (pub/sub); each goes to `onPush`.
        case pushes
    }

    public enum State { case disconnected, connecting, handshaking, ready }

    private let loop: EventLoop
    /// Where the link connects (with an `addressProvider`, the address it last used).
    public private(set) var endpoint: RedisEndpoint
    private let mode: Mode
    private let logger: Logger
    /// How long a command may wait for its reply before the link is declared wedged, ms.
    private let replyTimeoutMs: Int64
    public private(set) var state = State.disconnected
    private var context: UnsafeMutablePointer<redisContext>?
    private var fd: Int32 = -1
    /// Plain, or the TLS session of a rediss:// link (made once the TCP connect succeeds).
    private var transport = RedisTransport.plain
    /// Commands sent and not yet answered, oldest first, with their send time (ms).
    private var pending: [(sentAt: Int64, callback: (RedisReply) -> Void)] = []
    private var pendingHead = 0
    private var flushScheduled = false
    private var writeInterest = false
    /// Consecutive failed attempts, for the backoff.
    private var failures = 0
    private var stopped = false
    private var connectTimer: Int?
    /// The pending reconnect after a failure.
    private var reconnectTimer: Int?
    /// Read scratch space: bytes go from the socket straight into hiredis's reader.
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)

    /// Called each time the link becomes ready (first connect and every reconnect).
    public var onReady: (() -> Void)?
    /// Called when an established or connecting link fails, with the reason.
    public var onDown: ((String) -> Void)?
    /// In `.pushes` mode, receives every reply after the login.
    public var onPush: ((RedisReply) -> Void)?
    /// Total reconnects after a failure, for metrics.
    public private(set) var reconnects = 0
    /// Error replies received, for metrics.
    public private(set) var errorReplies = 0
    /// Why the link is down, while it is.
    public private(set) var lastError = "not connected yet"
    /// Sentinel: asked for the address at each connect; `.failure` (why there is none) fails the
    /// attempt, and the link tries again after its backoff.
    public var addressProvider: (() -> Result<RedisEndpoint, RedisAddressUnavailable>)?
    /// Sentinel: `ROLE` is a login step, and a node that is not a master is refused.
    public var requiresMaster = false
    /// Sentinel: told when the node proves not to be the master (an error reply starting with
    /// READONLY, or a refused ROLE check), with the reason.
    public var onNotMaster: ((String) -> Void)?

    public init(loop: EventLoop, endpoint: RedisEndpoint, mode: Mode, logger: Logger, replyTimeoutMs: Int64 = 5000) {
        self.loop = loop
        self.endpoint = endpoint
        self.mode = mode
        self.logger = logger
        self.replyTimeoutMs = replyTimeoutMs
    }

    deinit { readBuffer.deallocate() }

    public var isReady: Bool { state == .ready }
    public var pendingCount: Int { pending.count - pendingHead }

    public func connect() {
        guard !stopped, state == .disconnected else { return }
        state = .connecting
        switch addressProvider?() {
        case .failure(let unavailable):
            fail(unavailable.reason)
            return
        case .success(let address): endpoint = address
        case nil: break
        }
        guard let ctx = redisConnectNonBlock(endpoint.host, Int32(endpoint.port)) else {
            fail("out of memory")
            return
        }
        context = ctx
        if ctx.pointee.err != 0 {
            fail(Self.errorString(ctx))
            return
        }
        fd = ctx.pointee.fd
        do {
            try loop.register(fd: fd, handler: self, events: IOEvents.writable)
        } catch {
            fail("\(error)")
            return
        }
        connectTimer = loop.schedule(afterMs: 3000) {
            guard self.state == .connecting else { return }
            self.fail(self.transport.isTLS ? "TLS handshake timed out" : "connect timed out")
        }
    }

    /// Stops for good: closes the socket, fails what is pending, never reconnects.
    public func stop() {
        stopped = true
        // The timer holds this link strongly: cancelled, it lets the link (and its loop) go.
        if let timer = reconnectTimer { loop.cancelTimer(timer) }
        reconnectTimer = nil
        teardown()
        failPending("Herald is shutting down")
    }

    /// Queues a command (binary-safe arguments). Returns false, without calling `callback`,
    /// when the link is not ready. Writes happen once per loop tick, pipelined.
    @discardableResult
    public func send(_ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void = { _ in }) -> Bool {
        guard state == .ready else { return false }
        append(arguments, callback)
        return true
    }

    private func append(_ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) {
        guard let ctx = context else { return }
        // hiredis reads each argument where it lies (pointers and lengths on the stack, no copy)
        // for the usual short commands; a long one (a SUBSCRIBE or XREAD naming thousands) is
        // first copied into one buffer, as pinning each array nests one call per argument.
        let count = arguments.count
        let status: Int32 = withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { argv in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: count) { argvlen in
                if count <= Self.maxPinnedArguments {
                    return Self.withArguments(arguments, from: 0, argv, argvlen) {
                        redisAppendCommandArgv(ctx, Int32(count), argv.baseAddress, argvlen.baseAddress)
                    }
                }
                let flat = arguments.flatMap { $0 }
                return flat.withUnsafeBytes { base in
                    var offset = 0
                    for (i, argument) in arguments.enumerated() {
                        argv[i] = base.baseAddress.map { ($0 + offset).assumingMemoryBound(to: CChar.self) } ?? Self.emptyArgument
                        argvlen[i] = argument.count
                        offset += argument.count
                    }
                    return redisAppendCommandArgv(ctx, Int32(count), argv.baseAddress, argvlen.baseAddress)
                }
            }
        }
        guard status == REDIS_OK else {
            callback(.linkLost(.notSent("hiredis could not queue the command (out of memory)")))
            return
        }
        // A pushes link matches no reply to a command once logged in (they all go to onPush).
        if mode == .commands || state == .handshaking { pending.append((Clock.nowMs(), callback)) }
        scheduleFlush()
    }

    /// Longest command whose arguments are passed in place (one nested call each).
    private static let maxPinnedArguments = 16

    /// Fills `argv`/`argvlen` from `arguments[index...]`, each array pinned while `body` runs.
    private static func withArguments(
        _ arguments: [[UInt8]], from index: Int,
        _ argv: UnsafeMutableBufferPointer<UnsafePointer<CChar>?>,
        _ argvlen: UnsafeMutableBufferPointer<Int>, _ body: () -> Int32
    ) -> Int32 {
        guard index < arguments.count else { return body() }
        return arguments[index].withUnsafeBytes { bytes in
            argv[index] = bytes.baseAddress.map { $0.assumingMemoryBound(to: CChar.self) } ?? Self.emptyArgument
            argvlen[index] = bytes.count
            return withArguments(arguments, from: index + 1, argv, argvlen, body)
        }
    }

    /// Where an empty argument points (hiredis reads zero bytes from it).
    nonisolated(unsafe) private static let emptyArgument: UnsafePointer<CChar> = UnsafePointer(strdup(""))

    private func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        // Strong captures throughout: a weak reference would give this hot object a side
        // table and every retain of it the slow path; a closure holds it until it runs.
        loop.deferToEndOfTick {
            self.flushScheduled = false
            self.flush()
        }
    }

    private func flush() {
        guard let ctx = context, state == .ready || state == .handshaking else { return }
        switch transport.flush(ctx) {
        case .failure(let failure):
            fail(failure.reason)
        case .success(let done):
            setWriteInterest(!done || transport.readWantsWrite)
        }
    }

    private func setWriteInterest(_ wanted: Bool) {
        guard wanted != writeInterest, fd >= 0 else { return }
        writeInterest = wanted
        loop.modify(fd: fd, events: IOEvents.readable | (wanted ? IOEvents.writable : 0))
    }

    public func handleEvents(_ events: UInt32) {
        if state == .connecting {
            connected()
            return
        }
        if events & IOEvents.readable != 0 || events & IOEvents.hangup != 0 {
            readAvailable()
            // A TLS write that had to read first can go on now.
            if transport.writeWantsRead, state != .disconnected { flush() }
        }
        if events & IOEvents.writable != 0, state != .disconnected {
            // A TLS read that had to write first (e.g. a key update's answer) can go on now.
            if transport.readWantsWrite { readAvailable() }
            if state != .disconnected { flush() }
        }
    }

    private func connected() {
        guard transportConnected() else { return }
        if let timer = connectTimer { loop.cancelTimer(timer) }
        connectTimer = nil
        state = .handshaking
        writeInterest = false
        loop.modify(fd: fd, events: IOEvents.readable)
        var login: [[UInt8]] = []
        if let password = endpoint.password {
            login = [Array("AUTH".utf8)] + (endpoint.username.map { [Array($0.utf8)] } ?? []) + [Array(password.utf8)]
        }
        var steps: [[[UInt8]]] = []
        if !login.isEmpty { steps.append(login) }
        if endpoint.database != 0 { steps.append([Array("SELECT".utf8), Array(String(endpoint.database).utf8)]) }
        // TLS 1.3 ends the handshake before the server has judged the client's certificate: a
        // round trip shows whether it was refused, before the link is called ready.
        if steps.isEmpty && endpoint.tls { steps.append([Array("PING".utf8)]) }
        if requiresMaster { steps.append([Array("ROLE".utf8)]) }
        guard !steps.isEmpty else {
            becomeReady()
            return
        }
        var left = steps.count
        for step in steps {
            // Held by `pending`, which every reply or failure empties: no lasting cycle.
            append(step) { reply in
                switch reply {
                case .linkLost:
                    // An earlier step already dropped the link, and said so once.
                    return
                case .error(let message):
                    self.fail("login refused: \(message)")
                case .array(let role) where self.requiresMaster && role.first?.text != "master":
                    let reason = "\(self.endpoint) is not a master (ROLE: \(role.first?.text ?? "?"))"
                    self.fail(reason)
                    self.onNotMaster?(reason)
                default:
                    left -= 1
                    if left == 0 { self.becomeReady() }
                }
            }
        }
    }

    /// Completes the transport under the login: the TCP connect, then on a rediss:// link the
    /// TLS handshake, one step per socket event. Both count against the connect timeout, so a
    /// server that never answers the handshake cannot hold the link. False while under way, or
    /// when it failed (the link is then down, with the reason).
    private func transportConnected() -> Bool {
        if case .plain = transport {
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else {
                fail(String(cString: strerror(error)))
                return false
            }
            guard endpoint.tls else { return true }
            do {
                transport = .tls(try TLSSession(context: endpoint.tlsContext ?? .systemDefault, fd: fd, host: endpoint.host))
            } catch {
                fail(error.description)
                return false
            }
        }
        guard case .tls(let session) = transport else { return true }
        switch session.handshake() {
        case .done:
            return true
        case .waiting(let wait):
            writeInterest = wait == .writable
            loop.modify(fd: fd, events: wait == .writable ? IOEvents.writable : IOEvents.readable)
            return false
        case .failed(let reason):
            // Once per cause, not once per retry: the reason stays in `lastError` (/readyz).
            if reason != lastError {
                logger.error("redis TLS refused", metadata: ["redis": "\(endpoint)", "mode": "\(mode)", "reason": "\(reason)"])
            }
            fail(reason)
            return false
        }
    }

    private func becomeReady() {
        state = .ready
        if failures > 0 { reconnects += 1 }
        failures = 0
        logger.info("redis link up", metadata: ["redis": "\(endpoint)", "mode": "\(mode)"])
        onReady?()
    }

    private func readAvailable() {
        guard let ctx = context else { return }
        // Read until the socket is empty (or 1 MiB, for fairness): Redis drops pub/sub clients
        // that fall behind, so Herald never lets replies wait in the kernel.
        var total = 0
        while total < 1 << 20 {
            switch transport.read(fd, into: readBuffer) {
            case .bytes(let n):
                total += n
                if redisReaderFeed(ctx.pointee.reader, readBuffer.baseAddress!.assumingMemoryBound(to: CChar.self), n) != REDIS_OK {
                    fail("reader: out of memory")
                    return
                }
                if !drainReplies() { return }
                // A short read emptied the socket: skip the read that would only say EAGAIN
                // (epoll is level-triggered and reports what arrives later).
                if n < readBuffer.count && !transport.hasBufferedInput { return }
            case .wouldBlock:
                return
            case .closed:
                fail("Redis closed the connection")
                return
            case .failed(let reason):
                fail(reason)
                return
            }
        }
        // Stopped for fairness with decrypted bytes still inside OpenSSL: the socket may be
        // empty, so epoll would not call again; come back next tick.
        if transport.hasBufferedInput {
            _ = loop.schedule(afterMs: 0) { self.readAvailable() }
        }
    }

    /// Hands every complete reply to its owner. Returns false if the link failed meanwhile.
    private func drainReplies() -> Bool {
        while let ctx = context {
            var raw: UnsafeMutableRawPointer?
            guard redisReaderGetReply(ctx.pointee.reader, &raw) == REDIS_OK else {
                fail("protocol error from Redis")
                return false
            }
            guard let replyPointer = raw else { return true }
            let reply = RedisReply(replyPointer.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(replyPointer)
            if case .error(let message) = reply {
                errorReplies += 1
                if message.hasPrefix("READONLY") { onNotMaster?("\(endpoint) answered \(message)") }
            }
            if pendingHead < pending.count && (mode == .commands || state == .handshaking) {
                let callback = pending[pendingHead].callback
                pendingHead += 1
                if pendingHead == pending.count {
                    pending.removeAll(keepingCapacity: true)
                    pendingHead = 0
                }
                callback(reply)
            } else {
                onPush?(reply)
            }
            if state == .disconnected { return false }
        }
        return false
    }

    /// Declares the link wedged when the oldest command waited past the reply timeout.
    public func checkTimeouts(now: Int64) {
        guard state == .ready || state == .handshaking, pendingHead < pending.count else { return }
        if now - pending[pendingHead].sentAt > replyTimeoutMs {
            fail("no reply within \(replyTimeoutMs) ms")
        }
    }

    /// Drops the link and reconnects, e.g. when it is wedged.
    public func restart(_ reason: String) {
        guard state != .disconnected else { return }
        fail(reason)
    }

    /// Sentinel: the master moved. A link to elsewhere drops (its commands hear the link was
    /// lost) and, like a link waiting out its backoff, reconnects now to `addressProvider`'s
    /// address. A ready link already there, and a link not started, are left alone.
    public func relocate(_ reason: String) {
        guard !stopped else { return }
        if state == .ready, case .success(let address)? = addressProvider?(), address == endpoint { return }
        if state != .disconnected { fail(reason) }
        guard let timer = reconnectTimer else { return }
        loop.cancelTimer(timer)
        reconnectTimer = nil
        connect()
    }

    private func fail(_ reason: String) {
        let wasUp = state == .ready
        teardown()
        lastError = reason
        failPending(reason)
        if wasUp || failures == 0 {
            logger.warning("redis link down", metadata: ["redis": "\(endpoint)", "mode": "\(mode)", "reason": "\(reason)"])
        }
        onDown?(reason)
        guard !stopped else { return }
        failures += 1
        let base = min(5000, 100 << min(failures - 1, 6))
        let jittered = Int64(Double(base) * Double.random(in: 0.8...1.2))
        reconnectTimer = loop.schedule(afterMs: jittered) {
            self.reconnectTimer = nil
            self.connect()
        }
    }

    /// Every command still waiting hears that no reply will come. Each was handed to hiredis and
    /// may have been written before the link went: it may or may not have run.
    private func failPending(_ reason: String) {
        let callbacks = pending[pendingHead...].map(\.callback)
        pending = []
        pendingHead = 0
        let loss = RedisReply.linkLost(LinkLoss(reason: reason, mayHaveRun: true))
        for callback in callbacks { callback(loss) }
    }

    private func teardown() {
        if let timer = connectTimer { loop.cancelTimer(timer) }
        connectTimer = nil
        if fd >= 0 { loop.unregister(fd: fd) }
        // The session goes first: it only borrows the socket, which redisFree closes.
        transport = .plain
        if let ctx = context { redisFree(ctx) }
        context = nil
        fd = -1
        writeInterest = false
        state = .disconnected
    }

    private static func errorString(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        RedisTransport.errorString(ctx)
    }
}
