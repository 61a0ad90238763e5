// The one table of Herald's options: flag, environment variable, default as shown, help and
// parser for each. `resolve`, the command line (CommandLineArguments), `--help` and the test
// of README's configuration table all read this table; no other list of options exists.
import Logging

extension Config {
    /// One configurable setting: its flag, its environment variable, its default as `--help`
    /// shows it, its help line, and how to apply a value to a `Config`.
    public struct Option: Sendable {
        /// The flag without its dashes: `max-body` is `--max-body`.
        public let flag: String
        /// The `HERALD_*` variable that sets it when the flag is absent.
        public let environment: String
        /// What the value looks like in `--help`: `size` in `--max-body <size>`; nil for a
        /// switch, which takes no value on the command line (its variable takes 1/0).
        public let valueName: String?
        /// The default as `--help` and README.md show it.
        public let shownDefault: ShownDefault
        /// One or two sentences for `--help`.
        public let help: String
        let apply: @Sendable (inout Config, String) throws(ConfigError) -> Void

        /// `--max-body`: the flag as typed, and as errors name the option.
        public var name: String { "--" + flag }
        public var isSwitch: Bool { valueName == nil }
    }

    /// A default as it is shown: a value a user could type, prose for one computed at start,
    /// or nothing (an unset secret, a switch that is off).
    public enum ShownDefault: Equatable, Sendable {
        case value(String)
        case described(String)
        case none
    }

    /// Every option, in the order `--help` lists them and `resolve` applies them (so the
    /// first bad value in this order is the one refused).
    public static let options: [Option] = [
        .text("host", "HERALD_HOST", \.host, valueName: "address", help: "Address to listen on."),
        .integer("port", "HERALD_PORT", \.port, in: 1...65535, valueName: "port", help: "TCP port."),
        Option(
            flag: "redis", environment: "HERALD_REDIS_URL", valueName: "url",
            shownDefault: .value(Config().redis.map { "redis://\($0)" }.joined(separator: ",")),
            help:
                "redis://[user:password@]host[:port][/db], rediss:// for TLS; comma-separated for several nodes (a Redis Cluster); or the master via Sentinel: redis+sentinel://[user:password@]host[:port][,...]/<master-name>[/db]."
        ) { c, v throws(ConfigError) in
            if SentinelTarget.isSentinelURL(v.trimmingWhitespace()) {
                let target = try SentinelTarget.parse(v.trimmingWhitespace())
                c.sentinel = target
                c.redis = target.sentinels.map { target.master(host: $0.host, port: $0.port) }
                c.redisCluster = false
                return
            }
            c.redis = try RedisEndpoint.parseList(v)
            c.redisCluster = c.redis.count > 1 || v.contains("redis+cluster://") || v.contains("rediss+cluster://")
            if c.redisCluster, let db = c.redis.first(where: { $0.database != 0 })?.database {
                throw ConfigError("--redis", v, "a Redis Cluster has only database 0, not \(db)")
            }
        },
        Option(
            flag: "sentinel-password", environment: "HERALD_SENTINEL_PASSWORD", valueName: "password", shownDefault: .none,
            help: "Password of the sentinels themselves (redis+sentinel://); the URL's credentials are the master's."
        ) { c, v throws(ConfigError) in
            c.sentinelPassword = v
        },
        Option(
            flag: "redis-ca", environment: "HERALD_REDIS_CA", valueName: "file", shownDefault: .described("the system's CAs"),
            help: "PEM bundle of the CAs that may sign Redis's certificate (rediss:// only)."
        ) { c, v throws(ConfigError) in
            c.redisTLS.caFile = try nonEmpty("--redis-ca", v)
        },
        Option(
            flag: "redis-cert", environment: "HERALD_REDIS_CERT", valueName: "file", shownDefault: .none,
            help: "PEM client certificate (chain) for mutual TLS with Redis; needs --redis-key."
        ) { c, v throws(ConfigError) in
            c.redisTLS.certFile = try nonEmpty("--redis-cert", v)
        },
        Option(
            flag: "redis-key", environment: "HERALD_REDIS_KEY", valueName: "file", shownDefault: .none,
            help: "PEM private key of --redis-cert."
        ) { c, v throws(ConfigError) in
            c.redisTLS.keyFile = try nonEmpty("--redis-key", v)
        },
        Option(
            flag: "redis-tls-verify", environment: "HERALD_REDIS_TLS_VERIFY", valueName: "on|off", shownDefault: .value("on"),
            help: "off skips checking Redis's certificate and name (anyone on the path can read and forge the traffic); logs a warning."
        ) { c, v throws(ConfigError) in
            c.redisTLS.verify = try boolean("--redis-tls-verify", v.isEmpty ? "on" : v)
        },
        Option(
            flag: "loops", environment: "HERALD_LOOPS", valueName: "n",
            shownDefault: .described("number of cores; one fewer (at least 1) when every Redis address is loopback"),
            help: "Event loops (threads), 1-256."
        ) { c, v throws(ConfigError) in
            c.loopsSetting = try integer("--loops", v, in: 1...256)
        },
        .text("public", "HERALD_PUBLIC_DIR", \.publicDir, valueName: "dir", help: "Folder of static files."),
        .size("max-body", "HERALD_MAX_BODY", \.maxBody, in: 0...(1 << 30), help: "Largest request body."),
        .size("max-header", "HERALD_MAX_HEADER", \.maxHeader, in: 1024...(1 << 20), help: "Largest request header block."),
        .size(
            "max-message", "HERALD_MAX_MESSAGE", \.maxMessage, in: 125...(1 << 30),
            help: "Largest WebSocket message from a client."),
        .size(
            "max-outbound", "HERALD_MAX_OUTBOUND", \.maxOutbound, in: 1024...(1 << 30),
            help: "Bytes queued to one client before its deliveries are dropped."),
        Option(
            flag: "compression", environment: "HERALD_COMPRESSION", valueName: "on|off", shownDefault: .value("on"),
            help: "permessage-deflate (RFC 7692) with WebSocket clients that offer it; each delivery is compressed once for all of them."
        ) { c, v throws(ConfigError) in
            c.compression = try boolean("--compression", v.isEmpty ? "on" : v)
        },
        .size(
            "compression-min", "HERALD_COMPRESSION_MIN", \.compressionMin, in: 0...(1 << 30),
            help: "Smallest WebSocket message Herald compresses; smaller ones are sent uncompressed."),
        .seconds(
            "header-timeout", "HERALD_HEADER_TIMEOUT", \.headerTimeoutMs,
            help: "Seconds a client has to send a complete request."),
        .seconds(
            "ping-interval", "HERALD_PING_INTERVAL", \.pingIntervalMs,
            help: "Seconds of WebSocket client silence before a ping; twice this drops it."),
        .seconds(
            "keepalive-timeout", "HERALD_KEEPALIVE_TIMEOUT", \.keepAliveTimeoutMs,
            help: "Seconds an idle keep-alive HTTP connection stays open."),
        .integer(
            "max-blocking", "HERALD_MAX_BLOCKING", \.maxBlocking, in: 1...10_000,
            help: "Redis connections per loop for blocking queue pops; past it pops answer 503."),
        .seconds(
            "blocking-idle", "HERALD_BLOCKING_IDLE", \.blockingIdleMs,
            help: "Seconds an unused blocking Redis connection stays open."),
        .seconds(
            "claim-idle", "HERALD_CLAIM_IDLE", \.claimIdleMs,
            help: "Seconds a consumer-group entry may stay pending on a vanished consumer before another claims it."),
        // At least 0.3 s: the lease is renewed every third of it, and a renewal is a round trip.
        .seconds(
            "queue-lease", "HERALD_QUEUE_LEASE", \.queueLeaseMs, atLeastMs: 300,
            help: "Seconds a queue worker's processing list lives without renewal; then any Herald puts its items back (a Herald killed with items held)."),
        // At least 1 s: leases are renewed every quarter of it, and a renewal is a round trip.
        .seconds(
            "presence-ttl", "HERALD_PRESENCE_TTL", \.presenceTtlMs, atLeastMs: 1000,
            help: "Seconds within which the presence members of a Herald that died (killed, host lost) leave, with their leave events."),
        Option(
            flag: "api-keys", environment: "HERALD_API_KEYS", valueName: "keys", shownDefault: .none,
            help: "Comma-separated API keys (16+ characters) allowed to do anything; turns auth on."
        ) { c, v throws(ConfigError) in
            c.apiKeys = v.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
            guard c.apiKeys.allSatisfy({ $0.count >= 16 }) else { throw ConfigError("--api-keys", "(hidden)", "each key must be at least 16 characters") }
        },
        Option(
            flag: "jwt-secret", environment: "HERALD_JWT_SECRET", valueName: "secret", shownDefault: .none,
            help: "Secret (32+ bytes) for HS256 tokens with publish/subscribe channel globs; turns auth on."
        ) { c, v throws(ConfigError) in
            guard v.utf8.count >= 32 else { throw ConfigError("--jwt-secret", "(hidden)", "must be at least 32 bytes") }
            c.jwtSecret = v
        },
        .seconds(
            "token-warning", "HERALD_TOKEN_WARNING", \.tokenWarningMs,
            help: "Seconds before a token's exp a WebSocket or event stream is told token_expiring (at most half its remaining life)."),
        Option(
            flag: "allowed-origins", environment: "HERALD_ALLOWED_ORIGINS", valueName: "origins",
            shownDefault: .described("Herald's own origin and loopback pages"),
            help: "Comma-separated origins whose pages may call Herald (broker endpoints, WebSockets, CORS), or *."
        ) { c, v throws(ConfigError) in
            c.allowedOrigins = v.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
            for origin in c.allowedOrigins where origin != "*" && !(origin.hasPrefix("http://") || origin.hasPrefix("https://")) {
                throw ConfigError("--allowed-origins", origin, "an origin looks like https://example.com (or * for any)")
            }
        },
        // Default 0: sized at start from the file limit, less a reserve for Redis links.
        Option(
            flag: "max-connections", environment: "HERALD_MAX_CONNECTIONS", valueName: "n",
            shownDefault: .described("the file limit"),
            help: "Most client connections at once (less a reserve for Redis links); beyond, 503 or close 1013."
        ) { c, v throws(ConfigError) in
            c.maxConnections = try integer("--max-connections", v, in: 1...1_000_000)
        },
        .integer(
            "max-subscriptions", "HERALD_MAX_SUBSCRIPTIONS", \.maxSubscriptions, in: 1...1_000_000,
            help: "Most subscriptions per WebSocket or event stream."),
        .integer(
            "max-watch-keys", "HERALD_MAX_WATCH_KEYS", \.maxWatchKeys, in: 1...1_000_000,
            help: "Most keys one watched pattern may match when it is watched (SCAN); beyond, watch_too_broad."),
        .size(
            "max-watch-value", "HERALD_MAX_WATCH_VALUE", \.maxWatchValue, in: 1024...(1 << 30),
            help: "Largest watched value sent; a larger one is told by its size only (truncated)."),
        .switch(
            "keyspace-events", "HERALD_KEYSPACE_EVENTS", \.keyspaceEvents,
            help: "Let Herald add the keyspace notifications watches need to Redis's notify-keyspace-events (CONFIG SET)."),
        .integer(
            "max-pending", "HERALD_MAX_PENDING", \.maxPending, in: 1...10_000_000,
            help: "Most commands per loop waiting on Redis; beyond, publishes answer 503."),
        Option(
            flag: "slow-consumer", environment: "HERALD_SLOW_CONSUMER", valueName: "policy",
            shownDefault: .value(Config().slowConsumerPolicy.rawValue),
            help: "drop (deliveries, with a notice) or close (1008) for a subscriber whose queue is full."
        ) { c, v throws(ConfigError) in
            guard let policy = SlowConsumerPolicy(rawValue: v.lowercased()) else {
                throw ConfigError("--slow-consumer", v, "must be drop or close")
            }
            c.slowConsumerPolicy = policy
        },
        Option(
            flag: "log-level", environment: "HERALD_LOG_LEVEL", valueName: "level",
            shownDefault: .value(Config().logLevel.rawValue),
            help: "trace, debug, info, notice, warning, error or critical."
        ) { c, v throws(ConfigError) in
            guard let level = Logger.Level(rawValue: v.lowercased()) else {
                throw ConfigError("--log-level", v, "must be one of trace, debug, info, notice, warning, error, critical")
            }
            c.logLevel = level
        },
        Option(
            flag: "log-format", environment: "HERALD_LOG_FORMAT", valueName: "format",
            shownDefault: .value(Config().logFormat), help: "text or json (one object per line)."
        ) { c, v throws(ConfigError) in
            guard ["text", "json"].contains(v.lowercased()) else { throw ConfigError("--log-format", v, "must be text or json") }
            c.logFormat = v.lowercased()
        },
        Option(
            flag: "hook-url", environment: "HERALD_HOOK_URL", valueName: "url", shownDefault: .none,
            help: "http://host[:port]/path of the backend that authorizes connects, subscriptions and writes (2xx allows, 401/403 refuses)."
        ) { c, v throws(ConfigError) in
            c.hookURL = try HookTarget.parse(v)
        },
        Option(
            flag: "hook-events", environment: "HERALD_HOOK_EVENTS", valueName: "events",
            shownDefault: .value(Config().hookEvents.names.joined(separator: ",")),
            help: "Which calls go to the hook: connect, subscribe, publish (comma-separated)."
        ) { c, v throws(ConfigError) in
            c.hookEvents = try HookEvents.parse(v)
        },
        .seconds(
            "hook-timeout", "HERALD_HOOK_TIMEOUT", \.hookTimeoutMs,
            help: "Seconds the hook has to answer; then the call is refused (hook_unavailable)."),
        .seconds(
            "idempotency-ttl", "HERALD_IDEMPOTENCY_TTL", \.idempotencyTtlMs,
            help: "Seconds the answer to a write with an Idempotency-Key is kept in Redis for retries."),
        .switch("access-log", "HERALD_ACCESS_LOG", \.accessLog, help: "Log one line per HTTP request."),
        .switch("echo", "HERALD_ECHO", \.echo, help: "Test only: serve a WebSocket echo endpoint at /echo."),
    ]

    /// The option set by `--<flag>`, if there is one.
    public static func option(flag: String) -> Option? {
        options.first { $0.flag == flag }
    }
}

// The kinds of value most options take: each parses, bounds and names the option in its
// errors, and shows the default `Config()` holds, so a default is written only once.
extension Config.Option {
    /// A non-empty string.
    static func text(
        _ flag: String, _ environment: String, _ field: WritableKeyPath<Config, String> & Sendable,
        valueName: String, help: String
    ) -> Self {
        Self(
            flag: flag, environment: environment, valueName: valueName, shownDefault: .value(Config()[keyPath: field]),
            help: help
        ) { c, v throws(ConfigError) in
            guard !v.isEmpty else { throw ConfigError("--" + flag, v, "must not be empty") }
            c[keyPath: field] = v
        }
    }

    /// A whole number in `range`.
    static func integer(
        _ flag: String, _ environment: String, _ field: WritableKeyPath<Config, Int> & Sendable,
        in range: ClosedRange<Int>, valueName: String = "n", help: String
    ) -> Self {
        Self(
            flag: flag, environment: environment, valueName: valueName, shownDefault: .value(String(Config()[keyPath: field])),
            help: help
        ) { c, v throws(ConfigError) in
            c[keyPath: field] = try Config.integer("--" + flag, v, in: range)
        }
    }

    /// Bytes in `range`, with an optional k/m/g suffix.
    static func size(
        _ flag: String, _ environment: String, _ field: WritableKeyPath<Config, Int> & Sendable,
        in range: ClosedRange<Int>, help: String
    ) -> Self {
        Self(
            flag: flag, environment: environment, valueName: "size", shownDefault: .value(Config.sizeText(Config()[keyPath: field])),
            help: help
        ) { c, v throws(ConfigError) in
            c[keyPath: field] = try Config.size("--" + flag, v, in: range)
        }
    }

    /// Seconds (fractions allowed), stored in milliseconds, at least `atLeastMs`.
    static func seconds(
        _ flag: String, _ environment: String, _ field: WritableKeyPath<Config, Int64> & Sendable,
        atLeastMs: Int64 = 10, help: String
    ) -> Self {
        Self(
            flag: flag, environment: environment, valueName: "seconds", shownDefault: .value(Config.secondsText(Config()[keyPath: field])),
            help: help
        ) { c, v throws(ConfigError) in
            let ms = try Config.seconds("--" + flag, v)
            guard ms >= atLeastMs else { throw ConfigError("--" + flag, v, "must be at least \(Config.secondsText(atLeastMs)) seconds") }
            c[keyPath: field] = ms
        }
    }

    /// On or off: `--echo` on the command line, `HERALD_ECHO=1` (or true/yes/on) in the environment.
    static func `switch`(
        _ flag: String, _ environment: String, _ field: WritableKeyPath<Config, Bool> & Sendable,
        help: String
    ) -> Self {
        Self(flag: flag, environment: environment, valueName: nil, shownDefault: .none, help: help) { c, v throws(ConfigError) in
            c[keyPath: field] = try Config.boolean("--" + flag, v)
        }
    }
}

// Value parsers and the inverse formatting used for shown defaults.
extension Config {
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

    /// A size as `size` reads it, with the largest suffix that divides it: 65536 is `64k`.
    static func sizeText(_ bytes: Int) -> String {
        for (suffix, shift) in [("g", 30), ("m", 20), ("k", 10)] where bytes > 0 && bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return String(bytes)
    }

    /// Seconds (fractions allowed), returned in milliseconds.
    static func seconds(_ name: String, _ value: String) throws(ConfigError) -> Int64 {
        guard let s = Double(value.trimmingWhitespace()), s.isFinite, s >= 0.01, s <= 86_400 else {
            throw ConfigError(name, value, "must be a number of seconds between 0.01 and 86400")
        }
        return Int64((s * 1000).rounded())
    }

    /// Milliseconds as seconds the way `seconds` reads them: 30000 is `30`, 300 is `0.3`.
    static func secondsText(_ ms: Int64) -> String {
        ms % 1000 == 0 ? String(ms / 1000) : String(Double(ms) / 1000)
    }

    static func nonEmpty(_ name: String, _ value: String) throws(ConfigError) -> String {
        guard !value.isEmpty else { throw ConfigError(name, value, "must not be empty") }
        return value
    }

    static func boolean(_ name: String, _ value: String) throws(ConfigError) -> Bool {
        switch value.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off", "": return false
        default: throw ConfigError(name, value, "must be true or false")
        }
    }
}
