// Herald's configuration: one value built once at start from flags and HERALD_* variables
// (a flag wins), validated there, and passed down. Nothing reads the environment later.
import Glibc
import Logging

public struct Config: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Redis servers; several are cluster seed nodes.
    public var redis = [RedisEndpoint(host: "127.0.0.1")]
    /// Whether `redis` lists the seed nodes of a Redis Cluster (several URLs, or `redis+cluster://`).
    public var redisCluster = false
    /// Event loops (threads), each with its own listener and Redis connections; nil = auto.
    public var loopsSetting: Int?
    /// The loops Herald runs: as set, else one per core, minus one when Redis runs on this
    /// host (a loopback address), so the single-threaded Redis keeps a core of its own. On a
    /// 2-core machine that shares Herald with Redis, one loop serves 1.15–1.3× the publishes of
    /// two at less CPU per request (BENCHMARKS.md, "Loops").
    public var loops: Int {
        loopsSetting ?? Self.automaticLoops(cores: Config.coreCount, redisIsLocal: redis.allSatisfy { Socket.isLoopback(host: $0.host) })
    }

    /// The automatic loop count: one per core, one fewer (at least 1) for a Redis on this host.
    public static func automaticLoops(cores: Int, redisIsLocal: Bool) -> Int {
        max(1, cores - (redisIsLocal ? 1 : 0))
    }
    public var publicDir = "./public"
    /// Largest request body, bytes.
    public var maxBody = 1 << 20
    /// Largest request header block, bytes.
    public var maxHeader = 16 * 1024
    /// Largest WebSocket message from a client, bytes.
    public var maxMessage = 1 << 20
    /// Bytes queued to one client before deliveries to it are dropped.
    public var maxOutbound = 4 << 20
    /// Time a client has to send a complete header block, ms.
    public var headerTimeoutMs: Int64 = 10_000
    /// Client silence before a server ping, ms; twice this without a word drops the client.
    public var pingIntervalMs: Int64 = 30_000
    /// An idle keep-alive HTTP connection is closed after this long, ms.
    public var keepAliveTimeoutMs: Int64 = 60_000
    /// Connections per loop for blocking pops (queue waits); past it, pops answer 503.
    public var maxBlocking = 64
    /// A blocking connection unused this long is closed, ms.
    public var blockingIdleMs: Int64 = 30_000
    /// A consumer-group entry pending this long on a vanished consumer is claimed, ms.
    public var claimIdleMs: Int64 = 30_000
    /// A queue worker's processing list not renewed for this long is put back in its queue, ms.
    public var queueLeaseMs: Int64 = 30_000
    /// API keys that may do anything (`Authorization: Bearer <key>`).
    public var apiKeys: [String] = []
    /// Secret for HS256 tokens whose `publish`/`subscribe` claims list channel globs.
    public var jwtSecret: String?
    /// Origins allowed for WebSockets and browser calls (CORS); empty = any.
    public var allowedOrigins: [String] = []
    /// Most client connections at once (process-wide); beyond, 503 or WebSocket close 1013.
    /// 0 means: as many as the process's file limit allows, less a reserve for Redis links.
    public var maxConnections = 0
    /// Most pub/sub subscriptions one WebSocket may hold.
    public var maxSubscriptions = 1000
    /// Most commands one loop may have waiting on Redis; beyond, publishes answer 503.
    public var maxPending = 10_000
    /// What happens to a subscriber whose queue is full: drop deliveries (and say how many) or
    /// close it with 1008.
    public var slowConsumerPolicy = SlowConsumerPolicy.drop
    public var logLevel = Logger.Level.info
    /// `text` (human) or `json` (one object per line).
    public var logFormat = "text"
    /// Log one line per HTTP request (method, path, status, bytes, duration).
    public var accessLog = false
    /// Test only: serve a WebSocket echo endpoint at /echo.
    public var echo = false

    public init() {}

    public enum SlowConsumerPolicy: String, Sendable { case drop, close }

    /// The credentials and origins, as the request path checks them.
    public var access: AccessPolicy {
        AccessPolicy(apiKeys: Set(apiKeys), jwtSecret: jwtSecret.map { Array($0.utf8) }, allowedOrigins: allowedOrigins)
    }

    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// One configurable setting: its flag, its environment variable, and how to apply a value.
    public struct Option: Sendable {
        public let flag: String
        public let environment: String
        let apply: @Sendable (inout Config, String) throws(ConfigError) -> Void
    }

    public static let options: [Option] = [
        Option(flag: "host", environment: "HERALD_HOST") { c, v throws(ConfigError) in
            guard !v.isEmpty else { throw ConfigError("--host", v, "must not be empty") }
            c.host = v
        },
        Option(flag: "port", environment: "HERALD_PORT") { c, v throws(ConfigError) in
            c.port = try integer("--port", v, in: 1...65535)
        },
        Option(flag: "redis", environment: "HERALD_REDIS_URL") { c, v throws(ConfigError) in
            c.redis = try RedisEndpoint.parseList(v)
            c.redisCluster = c.redis.count > 1 || v.contains("redis+cluster://")
            if c.redisCluster, let db = c.redis.first(where: { $0.database != 0 })?.database {
                throw ConfigError("--redis", v, "a Redis Cluster has only database 0, not \(db)")
            }
        },
        Option(flag: "loops", environment: "HERALD_LOOPS") { c, v throws(ConfigError) in
            c.loopsSetting = try integer("--loops", v, in: 1...256)
        },
        Option(flag: "public", environment: "HERALD_PUBLIC_DIR") { c, v throws(ConfigError) in
            guard !v.isEmpty else { throw ConfigError("--public", v, "must not be empty") }
            c.publicDir = v
        },
        Option(flag: "max-body", environment: "HERALD_MAX_BODY") { c, v throws(ConfigError) in
            c.maxBody = try size("--max-body", v, in: 0...(1 << 30))
        },
        Option(flag: "max-header", environment: "HERALD_MAX_HEADER") { c, v throws(ConfigError) in
            c.maxHeader = try size("--max-header", v, in: 1024...(1 << 20))
        },
        Option(flag: "max-message", environment: "HERALD_MAX_MESSAGE") { c, v throws(ConfigError) in
            c.maxMessage = try size("--max-message", v, in: 125...(1 << 30))
        },
        Option(flag: "max-outbound", environment: "HERALD_MAX_OUTBOUND") { c, v throws(ConfigError) in
            c.maxOutbound = try size("--max-outbound", v, in: 1024...(1 << 30))
        },
        Option(flag: "header-timeout", environment: "HERALD_HEADER_TIMEOUT") { c, v throws(ConfigError) in
            c.headerTimeoutMs = try seconds("--header-timeout", v)
        },
        Option(flag: "ping-interval", environment: "HERALD_PING_INTERVAL") { c, v throws(ConfigError) in
            c.pingIntervalMs = try seconds("--ping-interval", v)
        },
        Option(flag: "keepalive-timeout", environment: "HERALD_KEEPALIVE_TIMEOUT") { c, v throws(ConfigError) in
            c.keepAliveTimeoutMs = try seconds("--keepalive-timeout", v)
        },
        Option(flag: "max-blocking", environment: "HERALD_MAX_BLOCKING") { c, v throws(ConfigError) in
            c.maxBlocking = try integer("--max-blocking", v, in: 1...10_000)
        },
        Option(flag: "blocking-idle", environment: "HERALD_BLOCKING_IDLE") { c, v throws(ConfigError) in
            c.blockingIdleMs = try seconds("--blocking-idle", v)
        },
        Option(flag: "claim-idle", environment: "HERALD_CLAIM_IDLE") { c, v throws(ConfigError) in
            c.claimIdleMs = try seconds("--claim-idle", v)
        },
        Option(flag: "queue-lease", environment: "HERALD_QUEUE_LEASE") { c, v throws(ConfigError) in
            c.queueLeaseMs = try seconds("--queue-lease", v)
            guard c.queueLeaseMs >= 300 else { throw ConfigError("--queue-lease", v, "must be at least 0.3 seconds") }
        },
        Option(flag: "api-keys", environment: "HERALD_API_KEYS") { c, v throws(ConfigError) in
            c.apiKeys = v.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
            guard c.apiKeys.allSatisfy({ $0.count >= 16 }) else { throw ConfigError("--api-keys", "(hidden)", "each key must be at least 16 characters") }
        },
        Option(flag: "jwt-secret", environment: "HERALD_JWT_SECRET") { c, v throws(ConfigError) in
            guard v.utf8.count >= 32 else { throw ConfigError("--jwt-secret", "(hidden)", "must be at least 32 bytes") }
            c.jwtSecret = v
        },
        Option(flag: "allowed-origins", environment: "HERALD_ALLOWED_ORIGINS") { c, v throws(ConfigError) in
            c.allowedOrigins = v.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
            for origin in c.allowedOrigins where origin != "*" && !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) {
                throw ConfigError("--allowed-origins", origin, "an origin looks like https://example.com (or * for any)")
            }
        },
        Option(flag: "max-connections", environment: "HERALD_MAX_CONNECTIONS") { c, v throws(ConfigError) in
            c.maxConnections = try integer("--max-connections", v, in: 1...1_000_000)
        },
        Option(flag: "max-subscriptions", environment: "HERALD_MAX_SUBSCRIPTIONS") { c, v throws(ConfigError) in
            c.maxSubscriptions = try integer("--max-subscriptions", v, in: 1...1_000_000)
        },
        Option(flag: "max-pending", environment: "HERALD_MAX_PENDING") { c, v throws(ConfigError) in
            c.maxPending = try integer("--max-pending", v, in: 1...10_000_000)
        },
        Option(flag: "slow-consumer", environment: "HERALD_SLOW_CONSUMER") { c, v throws(ConfigError) in
            guard let policy = SlowConsumerPolicy(rawValue: v.lowercased()) else {
                throw ConfigError("--slow-consumer", v, "must be drop or close")
            }
            c.slowConsumerPolicy = policy
        },
        Option(flag: "log-level", environment: "HERALD_LOG_LEVEL") { c, v throws(ConfigError) in
            guard let level = Logger.Level(rawValue: v.lowercased()) else {
                throw ConfigError("--log-level", v, "must be one of trace, debug, info, notice, warning, error, critical")
            }
            c.logLevel = level
        },
        Option(flag: "log-format", environment: "HERALD_LOG_FORMAT") { c, v throws(ConfigError) in
            guard ["text", "json"].contains(v.lowercased()) else { throw ConfigError("--log-format", v, "must be text or json") }
            c.logFormat = v.lowercased()
        },
        Option(flag: "access-log", environment: "HERALD_ACCESS_LOG") { c, v throws(ConfigError) in
            c.accessLog = try boolean("--access-log", v)
        },
        Option(flag: "echo", environment: "HERALD_ECHO") { c, v throws(ConfigError) in
            c.echo = try boolean("--echo", v)
        },
    ]

    /// Builds the configuration: defaults, then the environment, then flags (by flag name,
    /// without dashes). Throws on the first bad value.
    public static func resolve(flags: [String: String], environment: [String: String]) throws(ConfigError) -> Config {
        var config = Config()
        for option in options {
            if let value = flags[option.flag] {
                try option.apply(&config, value)
            } else if let value = environment[option.environment] {
                try option.apply(&config, value)
            }
        }
        return config
    }

    static func integer(_ name: String, _ value: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let n = Int(value.trimmingWhitespace()) else { throw ConfigError(name, value, "must be a whole number") }
        guard range.contains(n) else { throw ConfigError(name, value, "must be between \(range.lowerBound) and \(range.upperBound)") }
        return n
    }

    /// Bytes, with an optional k/m/g suffix (powers of 1024).
    static func size(_ name: String, _ value: String, in range: ClosedRange<Int>) throws(ConfigError) -> Int {
        var text = value.trimmingWhitespace().lowercased()
        if text.hasSuffix("ib") { text.removeLast(2) } else if text.hasSuffix("b") { text.removeLast() }
        var multiplier = 1
        switch text.last {
        case "k": multiplier = 1 << 10
        case "m": multiplier = 1 << 20
        case "g": multiplier = 1 << 30
        default: break
        }
        if multiplier > 1 { text.removeLast() }
        guard let n = Int(text), n >= 0 else { throw ConfigError(name, value, "must be a size in bytes, like 65536, 64k or 1m") }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: multiplier)
        guard !overflow, range.contains(bytes) else {
            throw ConfigError(name, value, "must be between \(range.lowerBound) and \(range.upperBound) bytes")
        }
        return bytes
    }

    /// Seconds (fractions allowed), returned in milliseconds.
    static func seconds(_ name: String, _ value: String) throws(ConfigError) -> Int64 {
        guard let s = Double(value.trimmingWhitespace()), s.isFinite, s >= 0.01, s <= 86_400 else {
            throw ConfigError(name, value, "must be a number of seconds between 0.01 and 86400")
        }
        return Int64((s * 1000).rounded())
    }

    static func boolean(_ name: String, _ value: String) throws(ConfigError) -> Bool {
        switch value.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off", "": return false
        default: throw ConfigError(name, value, "must be true or false")
        }
    }
}
