// Starts Herald: one listener and one event-loop thread per configured loop, then waits for
// SIGTERM/SIGINT on the main thread and drains every loop before returning.
import CHiredis
import Dispatch
import Glibc
import Logging

public final class Server {
    private let config: Config
    private let logger: Logger

    public init(config: Config, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Raises the soft file limit to the hard one and, unless `--max-connections` was given,
    /// sizes the connection limit from it, keeping a reserve for listeners and Redis links.
    private static func fitConnectionLimit(_ config: inout Config, logger: Logger) {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let files = Int(min(limit.rlim_cur, 1_000_000))  // RLIM_INFINITY is the largest value
        let reserve = 32 + config.loops * (8 + config.maxBlocking)
        if config.maxConnections == 0 {
            config.maxConnections = max(1, files - reserve)
        } else if config.maxConnections > files - reserve {
            logger.warning(
                "--max-connections is above what the file limit allows",
                metadata: [
                    "maxConnections": "\(config.maxConnections)", "fileLimit": "\(files)",
                ])
        }
    }

    /// Serves until SIGTERM or SIGINT; returns the process exit code.
    public func run() throws -> Int32 {
        var config = self.config
        Self.fitConnectionLimit(&config, logger: logger)
        signal(SIGPIPE, SIG_IGN)
        // Only the main thread takes SIGTERM/SIGINT (with sigwait): loops inherit the mask.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        // A hook host that does not resolve is a configuration error, said at start.
        if let hook = config.hookURL { _ = try hook.resolve() }
        var listeners: [Int32] = []
        for _ in 0..<config.loops {
            listeners.append(try Socket.listen(host: config.host, port: config.port, reusePort: true))
        }
        let stats = ProcessStats(loopCount: config.loops)
        let handles = (0..<config.loops).map { _ in LoopHandle() }
        let finished = DispatchSemaphore(value: 0)
        for index in 0..<config.loops {
            let (config, logger, listener, handle) = (config, self.logger, listeners[index], handles[index])
            startThread(name: "herald-loop-\(index)") {
                do {
                    let context = try LoopContext(
                        index: index, listener: listener, handle: handle,
                        config: config, process: stats, logger: logger)
                    context.run()
                } catch {
                    logger.critical("event loop failed to start", metadata: ["loop": "\(index)", "error": "\(error)"])
                    exit(1)
                }
                finished.signal()
            }
        }
        if !Socket.isLoopback(host: config.host) && !config.access.isEnabled {
            logger.warning(
                "LISTENING ON \(config.host) WITHOUT AUTHENTICATION: anyone who can reach this port may publish and subscribe to every channel. Set --api-keys and/or --jwt-secret (HERALD_API_KEYS, HERALD_JWT_SECRET)."
            )
        }
        if config.redis.contains(where: \.tls) && !config.redisTLS.verify {
            logger.warning(
                "REDIS TLS VERIFICATION IS OFF (--redis-tls-verify off): Herald does not check Redis's certificate or name, so anyone on the path can impersonate Redis and read or change every message. Use --redis-ca instead."
            )
        }
        logger.notice(
            "herald listening",
            metadata: [
                "address": "http://\(config.host.contains(":") ? "[\(config.host)]" : config.host):\(config.port)",
                "redis": "\(config.sentinel?.description ?? config.redis.map(\.description).joined(separator: ","))",
                "loops": "\(config.loops)",
                "maxConnections": "\(config.maxConnections)",
            ])

        var received: Int32 = 0
        repeat { sigwait(&signals, &received) } while received != SIGTERM && received != SIGINT
        logger.notice("draining", metadata: ["signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
        for handle in handles { handle.requestStop() }
        for _ in handles { _ = finished.wait(timeout: .now() + 10) }
        logger.notice("stopped")
        return 0
    }
}

/// Runs `body` on a new POSIX thread (Foundation's Thread would pull all of Foundation in).
private func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    pthread_setname_np(thread, String(name.prefix(15)))
    pthread_detach(thread)
}

/// The closure a new thread runs, boxed to cross the C boundary.
private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
