// Where Redis is and how to log in: parsed from `redis://[user[:password]@]host[:port][/db]`
// (`rediss://` for TLS).

/// One Redis server address with its credentials and database.
public struct RedisEndpoint: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    /// Whether the link runs over TLS (`rediss://`); a cluster's discovered nodes inherit it
    /// from the seeds.
    public var tls: Bool
    /// The TLS settings built from the options at start; nil means the defaults (the system's
    /// CAs, verification on, no client certificate).
    public var tlsContext: TLSClientContext?

    public init(
        host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0, tls: Bool = false
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
    }

    /// The address without credentials, for logs.
    public var description: String { "\(host):\(port)" + (database != 0 ? "/\(database)" : "") }

    /// Parses a comma-separated list of `redis://` URLs (several are cluster seed nodes).
    public static func parseList(_ text: String) throws(ConfigError) -> [RedisEndpoint] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { throw ConfigError("--redis", text, "an empty Redis URL") }
        var endpoints: [RedisEndpoint] = []
        for part in parts { endpoints.append(try parse(part)) }
        // A cluster's discovered nodes take the first seed's scheme: the seeds must agree.
        guard endpoints.allSatisfy({ $0.tls == endpoints[0].tls }) else {
            throw ConfigError("--redis", text, "all URLs must be rediss:// (TLS) or none")
        }
        return endpoints
    }

    /// Parses one `redis://` or `rediss://` URL (`redis+cluster://`, `rediss+cluster://` for a
    /// cluster seed).
    public static func parse(_ url: String) throws(ConfigError) -> RedisEndpoint {
        func bad(_ why: String) -> ConfigError { ConfigError("--redis", url, why) }
        let scheme = ["redis://", "redis+cluster://", "rediss://", "rediss+cluster://"].first { url.hasPrefix($0) }
        guard let scheme else {
            throw bad("the URL must start with redis:// or rediss:// (TLS); redis+cluster:// or rediss+cluster:// for a cluster seed")
        }
        var rest = Substring(url.dropFirst(scheme.count))
        var endpoint = RedisEndpoint(host: "", tls: scheme.hasPrefix("rediss"))
        (endpoint.username, endpoint.password) = try credentials(&rest, bad)
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let n = Int(db), n >= 0, n <= 65535 else { throw bad("the database must be a number") }
                endpoint.database = n
            }
        }
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
            endpoint.host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            hostPort = hostPort[hostPort.index(after: close)...]
            if hostPort.hasPrefix(":") { endpoint.port = try port(hostPort.dropFirst(), bad) } else if !hostPort.isEmpty { throw bad("junk after the address") }
        } else if let colon = hostPort.lastIndex(of: ":") {
            endpoint.host = String(hostPort[..<colon])
            endpoint.port = try port(hostPort[hostPort.index(after: colon)...], bad)
        } else {
            endpoint.host = String(hostPort)
        }
        guard !endpoint.host.isEmpty else { throw bad("the host is missing") }
        guard endpoint.host.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "/") }) else { throw bad("the host is malformed") }
        return endpoint
    }

    private static func port(_ text: Substring, _ bad: (String) -> ConfigError) throws(ConfigError) -> Int {
        guard let p = Int(text), (1...65535).contains(p) else { throw bad("the port must be 1-65535") }
        return p
    }

    /// Takes `[user[:password]@]` off the front of a URL's rest, percent-decoded. The last `@`
    /// ends the credentials (an `@` after it, in a master name say, is written %40).
    static func credentials(_ rest: inout Substring, _ bad: (String) -> ConfigError) throws(ConfigError) -> (user: String?, password: String?) {
        guard let at = rest.lastIndex(of: "@") else { return (nil, nil) }
        let userInfo = rest[..<at]
        rest = rest[rest.index(after: at)...]
        guard let colon = userInfo.firstIndex(of: ":") else {
            return (userInfo.isEmpty ? nil : try percentDecoded(String(userInfo), bad), nil)
        }
        let user = String(userInfo[..<colon])
        return (user.isEmpty ? nil : try percentDecoded(user, bad), try percentDecoded(String(userInfo[userInfo.index(after: colon)...]), bad))
    }

    private static func percentDecoded(_ text: String, _ bad: (String) -> ConfigError) throws(ConfigError) -> String {
        guard let decoded = PercentDecoding.decode(text) else { throw bad("bad percent-encoding in the credentials") }
        return String(decoding: decoded, as: UTF8.self)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
