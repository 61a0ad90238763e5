// The `herald` command: flags and HERALD_* variables -> Config -> Server.
import ArgumentParser
import FoundationEssentials
import Glibc
import Herald
import Logging

struct HeraldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "An HTTP/WebSocket gateway that lets web clients use Redis as a message broker.",
        discussion: """
        Every option can also be set by its environment variable; a flag wins over the variable.
        Sizes take k/m/g suffixes (powers of 1024); times are in seconds.

        `herald healthcheck` asks the Herald configured by the same flags and variables for
        /healthz on loopback and exits 0 when it answers 200 (for container HEALTHCHECKs).
        """
    )

    @Option(parsing: .unconditional, help: "Address to listen on. [HERALD_HOST, default 127.0.0.1]")
    var host: String?
    @Option(parsing: .unconditional, help: "TCP port. [HERALD_PORT, default 8080]")
    var port: String?
    @Option(parsing: .unconditional, help: "redis://[user:password@]host[:port][/db]; comma-separated for several nodes. [HERALD_REDIS_URL, default redis://127.0.0.1:6379]")
    var redis: String?
    @Option(parsing: .unconditional, help: "Event loops (threads). [HERALD_LOOPS, default: number of cores, one fewer when Redis is on this host]")
    var loops: String?
    @Option(name: .customLong("public"), parsing: .unconditional, help: "Folder of static files. [HERALD_PUBLIC_DIR, default ./public]")
    var publicDir: String?
    @Option(parsing: .unconditional, help: "Largest request body. [HERALD_MAX_BODY, default 1m]")
    var maxBody: String?
    @Option(parsing: .unconditional, help: "Largest request header block. [HERALD_MAX_HEADER, default 16k]")
    var maxHeader: String?
    @Option(parsing: .unconditional, help: "Largest WebSocket message from a client. [HERALD_MAX_MESSAGE, default 1m]")
    var maxMessage: String?
    @Option(parsing: .unconditional, help: "Bytes queued to one client before its deliveries are dropped. [HERALD_MAX_OUTBOUND, default 4m]")
    var maxOutbound: String?
    @Option(parsing: .unconditional, help: "Seconds a client has to send a complete request. [HERALD_HEADER_TIMEOUT, default 10]")
    var headerTimeout: String?
    @Option(parsing: .unconditional, help: "Seconds of WebSocket client silence before a ping; twice this drops it. [HERALD_PING_INTERVAL, default 30]")
    var pingInterval: String?
    @Option(parsing: .unconditional, help: "Seconds an idle keep-alive HTTP connection stays open. [HERALD_KEEPALIVE_TIMEOUT, default 60]")
    var keepaliveTimeout: String?
    @Option(parsing: .unconditional, help: "Redis connections per loop for blocking queue pops; past it pops answer 503. [HERALD_MAX_BLOCKING, default 64]")
    var maxBlocking: String?
    @Option(parsing: .unconditional, help: "Seconds an unused blocking Redis connection stays open. [HERALD_BLOCKING_IDLE, default 30]")
    var blockingIdle: String?
    @Option(parsing: .unconditional, help: "Seconds a consumer-group entry may stay pending on a vanished consumer before another claims it. [HERALD_CLAIM_IDLE, default 30]")
    var claimIdle: String?
    @Option(parsing: .unconditional, help: "Seconds a queue worker's processing list lives without renewal; then any Herald puts its items back (a Herald killed with items held). [HERALD_QUEUE_LEASE, default 30]")
    var queueLease: String?
    @Option(parsing: .unconditional, help: "Comma-separated API keys (16+ chars) allowed to do anything; turns auth on. [HERALD_API_KEYS]")
    var apiKeys: String?
    @Option(parsing: .unconditional, help: "Secret (32+ bytes) for HS256 tokens with publish/subscribe channel globs; turns auth on. [HERALD_JWT_SECRET]")
    var jwtSecret: String?
    @Option(parsing: .unconditional, help: "Comma-separated origins whose pages may call Herald (broker endpoints, WebSockets, CORS), or *. [HERALD_ALLOWED_ORIGINS, default Herald's own origin and loopback pages]")
    var allowedOrigins: String?
    @Option(parsing: .unconditional, help: "Most client connections at once; beyond, 503 or close 1013. [HERALD_MAX_CONNECTIONS, default: the file limit less a reserve]")
    var maxConnections: String?
    @Option(parsing: .unconditional, help: "Most subscriptions per WebSocket. [HERALD_MAX_SUBSCRIPTIONS, default 1000]")
    var maxSubscriptions: String?
    @Option(parsing: .unconditional, help: "Most commands per loop waiting on Redis; beyond, publishes answer 503. [HERALD_MAX_PENDING, default 10000]")
    var maxPending: String?
    @Option(parsing: .unconditional, help: "drop (deliveries, with a notice) or close (1008) for a subscriber whose queue is full. [HERALD_SLOW_CONSUMER, default drop]")
    var slowConsumer: String?
    @Option(parsing: .unconditional, help: "trace, debug, info, notice, warning, error or critical. [HERALD_LOG_LEVEL, default info]")
    var logLevel: String?
    @Option(parsing: .unconditional, help: "text or json. [HERALD_LOG_FORMAT, default text]")
    var logFormat: String?
    @Flag(help: "Log one line per HTTP request. [HERALD_ACCESS_LOG=1]")
    var accessLog = false
    @Flag(help: "Test only: serve a WebSocket echo endpoint at /echo. [HERALD_ECHO=1]")
    var echo = false

    @Argument(help: "`healthcheck` to probe a running Herald instead of serving.")
    var action: String?

    func run() throws {
        var flags: [String: String] = [:]
        flags["host"] = host
        flags["port"] = port
        flags["redis"] = redis
        flags["loops"] = loops
        flags["public"] = publicDir
        flags["max-body"] = maxBody
        flags["max-header"] = maxHeader
        flags["max-message"] = maxMessage
        flags["max-outbound"] = maxOutbound
        flags["header-timeout"] = headerTimeout
        flags["ping-interval"] = pingInterval
        flags["keepalive-timeout"] = keepaliveTimeout
        flags["max-blocking"] = maxBlocking
        flags["blocking-idle"] = blockingIdle
        flags["claim-idle"] = claimIdle
        flags["queue-lease"] = queueLease
        flags["api-keys"] = apiKeys
        flags["jwt-secret"] = jwtSecret
        flags["allowed-origins"] = allowedOrigins
        flags["max-connections"] = maxConnections
        flags["max-subscriptions"] = maxSubscriptions
        flags["max-pending"] = maxPending
        flags["slow-consumer"] = slowConsumer
        flags["log-level"] = logLevel
        flags["log-format"] = logFormat
        if accessLog { flags["access-log"] = "true" }
        if echo { flags["echo"] = "true" }
        let config: Config
        do {
            config = try Config.resolve(flags: flags, environment: ProcessInfo.processInfo.environment)
        } catch {
            printError("herald: \(error)")
            throw ExitCode(2)
        }
        switch action {
        case nil: break
        case "healthcheck": throw ExitCode(HealthCheck.run(config) ? 0 : 1)
        case let other?:
            printError("herald: unknown action '\(other)'; the only one is healthcheck")
            throw ExitCode(2)
        }
        let level = config.logLevel
        let json = config.logFormat == "json"
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "herald")
        do {
            throw ExitCode(try Server(config: config, logger: logger).run())
        } catch let error as SocketError {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

/// Writes one line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

HeraldCommand.main()
