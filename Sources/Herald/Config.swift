// Herald's configuration: one value built once at start from flags and HERALD_* variables
// (a flag wins), validated there, and passed down. Nothing reads the environment later.
// Each option is declared once, in `Config.options` (Config+Options.swift); the command line,
// `--help` and the environment lookup are derived from that table.
import Glibc
import Logging

public struct Config: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Redis servers; several are cluster seed nodes.
    public var redis = [RedisEndpoint(host: "127.0.0.1")]
    /// Whether `redis` lists the seed nodes of a Redis Cluster (several URLs, or `redis+cluster://`).
    public var redisCluster = false
    /// The master found through Sentinel (`redis+sentinel://`); `redis` then holds the
    /// sentinels' addresses, with the master's credentials, as placeholders.
    public var sentinel: SentinelTarget?
    /// The sentinels' own password (AUTH on each sentinel connection).
    public var sentinelPassword: String?
    /// Files and verification for rediss:// links (--redis-ca, --redis-cert, --redis-key,
    /// --redis-tls-verify); `resolve` builds them into each endpoint's `tlsContext`.
    public var redisTLS = RedisTLSSettings()
    /// Event loops (threads), each with its own listener and Redis connections; nil = auto.
    public var loopsSetting: Int?
    /// The loops Herald runs: as set, else one per core, minus one when Redis runs on this
    /// host (a loopback address), so the single-threaded Redis keeps a core of its own.
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
    /// Agree to permessage-deflate (RFC 7692) with WebSocket clients that offer it.
    public var compression = true
    /// Smallest message compressed for such clients, bytes; smaller ones go plain.
    public var compressionMin = 256
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
    /// Presence members of a Herald that died stay listed at most this long, ms.
    public var presenceTtlMs: Int64 = 30_000
    /// API keys that may do anything (`Authorization: Bearer <key>`).
    public var apiKeys: [String] = []
    /// Secret for HS256 tokens whose `publish`/`subscribe` claims list channel globs.
    public var jwtSecret: String?
    /// How long before its token's `exp` a WebSocket or event stream is warned, ms (at most
    /// half the token's remaining life).
    public var tokenWarningMs: Int64 = 30_000
    /// Origins allowed for WebSockets and browser calls (CORS); empty = any.
    public var allowedOrigins: [String] = []
    /// Most client connections at once (process-wide); beyond, 503 or WebSocket close 1013.
    /// 0 means: as many as the process's file limit allows, less a reserve for Redis links.
    public var maxConnections = 0
    /// Most pub/sub subscriptions one WebSocket may hold.
    public var maxSubscriptions = 1000
    /// Most keys one watched pattern may match at its snapshot (SCAN); beyond, `watch_too_broad`.
    public var maxWatchKeys = 1000
    /// Largest watched value sent, bytes; a larger one is told by its size only.
    public var maxWatchValue = 1 << 20
    /// Let Herald turn on the keyspace notifications watches need (CONFIG SET).
    public var keyspaceEvents = false
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
    /// The backend's authorization hook, if any (see Hooks.swift).
    public var hookURL: HookTarget?
    /// Which calls go to the hook.
    public var hookEvents = HookEvents.all
    /// How long a hook call may take before it counts as no answer, ms.
    public var hookTimeoutMs: Int64 = 2000
    /// How long the answer to a write with an Idempotency-Key is kept for retries, ms.
    public var idempotencyTtlMs: Int64 = 86_400_000

    public init() {}

    public enum SlowConsumerPolicy: String, Sendable { case drop, close }

    /// The credentials and origins, as the request path checks them.
    public var access: AccessPolicy {
        AccessPolicy(apiKeys: Set(apiKeys), jwtSecret: jwtSecret.map { Array($0.utf8) }, allowedOrigins: allowedOrigins)
    }

    public static var coreCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

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
        try config.redisTLS.attach(to: &config.redis)
        // Under Sentinel, `redis` holds the master's placeholders; the sentinels and the master
        // Herald is told of later take the same TLS settings.
        if var sentinel = config.sentinel {
            sentinel.tlsContext = config.redis.first?.tlsContext
            config.sentinel = sentinel
        }
        return config
    }
}
