// A Redis master found through Sentinel, parsed from
// `redis+sentinel://[user:password@]host[:port][,host[:port]...]/<master-name>[/db]`
// (`rediss+sentinel://`: TLS to the sentinels and to the master, with the --redis-ca settings).
// The credentials and the database are the master's (and its replicas'); the sentinels' own
// password, if they have one, is `--sentinel-password`.

/// The sentinels to ask, the master's name they know it by, and how to log in to the master.
public struct SentinelTarget: Equatable, Sendable, CustomStringConvertible {
    /// Each sentinel's address (no credentials: those come from `--sentinel-password`).
    public var sentinels: [RedisEndpoint]
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    public var masterName: String
    /// The master's credentials and database; its host and port are the sentinels' answer.
    public var username: String?
    public var password: String?
    public var database: Int
    /// `rediss+sentinel://`: every link, to the sentinels and to the master, is TLS.
    public var tls = false
    /// The TLS settings built at start (nil: the defaults).
    public var tlsContext: TLSClientContext?

    public static let scheme = "redis+sentinel://"
    public static let tlsScheme = "rediss+sentinel://"

    /// Whether `url` names a master through Sentinel.
    public static func isSentinelURL(_ url: String) -> Bool { url.hasPrefix(scheme) || url.hasPrefix(tlsScheme) }
    public static let defaultPort = 26379

    public init(sentinels: [RedisEndpoint], masterName: String, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.username = username
        self.password = password
        self.database = database
    }

    /// The URL without credentials, for logs.
    public var description: String {
        (tls ? Self.tlsScheme : Self.scheme) + sentinels.map(\.description).joined(separator: ",") + "/" + masterName + (database != 0 ? "/\(database)" : "")
    }

    /// The master's endpoint at `host:port`, with the URL's credentials and database.
    public func master(host: String, port: Int) -> RedisEndpoint {
        var endpoint = RedisEndpoint(host: host, port: port, username: username, password: password, database: database)
        endpoint.tls = tls
        endpoint.tlsContext = tlsContext
        return endpoint
    }

    /// Each sentinel's endpoint with the sentinels' password (AUTH before anything else).
    public func sentinelEndpoints(password: String?) -> [RedisEndpoint] {
        sentinels.map { sentinel in
            var endpoint = RedisEndpoint(host: sentinel.host, port: sentinel.port, password: password)
            endpoint.tls = tls
            endpoint.tlsContext = tlsContext
            return endpoint
        }
    }

    /// Parses one `redis+sentinel://` URL.
    public static func parse(_ url: String) throws(ConfigError) -> SentinelTarget {
        func bad(_ why: String) -> ConfigError { ConfigError("--redis", url, why) }
        guard isSentinelURL(url) else { throw bad("a Sentinel URL starts with \(scheme) (or \(tlsScheme) for TLS)") }
        let tls = url.hasPrefix(tlsScheme)
        var rest = Substring(url.dropFirst(tls ? tlsScheme.count : scheme.count))
        var target = SentinelTarget(sentinels: [], masterName: "")
        target.tls = tls
        // As in redis:// URLs (a master name with `@` in it is written %40).
        (target.username, target.password) = try RedisEndpoint.credentials(&rest, bad)
        guard let slash = rest.firstIndex(of: "/") else { throw bad("the master's name is missing (…/<master-name>)") }
        let hosts = rest[..<slash]
        let path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        for host in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            target.sentinels.append(try sentinel(String(host).trimmingWhitespace(), bad))
        }
        guard let name = path.first, !name.isEmpty else { throw bad("the master's name is missing (…/<master-name>)") }
        target.masterName = try decoded(String(name), bad)
        guard target.masterName.utf8.allSatisfy({ $0 > 32 && $0 != 127 }) else { throw bad("the master's name has spaces or control characters") }
        guard path.count <= 2 else { throw bad("junk after the database") }
        if path.count == 2, !path[1].isEmpty {
            guard let n = Int(path[1]), n >= 0, n <= 65535 else { throw bad("the database must be a number") }
            target.database = n
        }
        return target
    }

    /// One `host[:port]` (`[v6addr][:port]`), port 26379 unless given.
    private static func sentinel(_ text: String, _ bad: (String) -> ConfigError) throws(ConfigError) -> RedisEndpoint {
        guard !text.isEmpty else { throw bad("a sentinel address is empty") }
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
            let after = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if after.hasPrefix(":") {
                port = try number(after.dropFirst(), bad)
            } else if !after.isEmpty {
                throw bad("junk after a sentinel's address")
            }
        } else if let colon = host.lastIndex(of: ":") {
            port = try number(host[host.index(after: colon)...], bad)
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw bad("a sentinel's host is missing") }
        guard host.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "/") }) else { throw bad("a sentinel's host is malformed") }
        return RedisEndpoint(host: String(host), port: port)
    }

    private static func number(_ text: Substring, _ bad: (String) -> ConfigError) throws(ConfigError) -> Int {
        guard let p = Int(text), (1...65535).contains(p) else { throw bad("the port must be 1-65535") }
        return p
    }

    private static func decoded(_ text: String, _ bad: (String) -> ConfigError) throws(ConfigError) -> String {
        guard let bytes = PercentDecoding.decode(text) else { throw bad("bad percent-encoding") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
