// Who may publish and subscribe to what. Off by default (local use); with API keys or a JWT
// secret configured, every broker endpoint needs a credential: an API key grants everything,
// a JWT grants the channel globs its `publish` and `subscribe` claims list.
import FoundationEssentials

/// What one request's credential allows. One reference wide (its fields live in a shared,
/// immutable box): every subscriber session keeps one, and with auth off they all share
/// `everything`.
public struct Grant: Sendable {
    private final class Storage: Sendable {
        let publish: [String]?
        let subscribe: [String]?
        let watch: [String]?
        let token: TokenClaims?
        let identity: PresenceIdentity?
        let publishGlobs: [[UInt8]]?
        let subscribeGlobs: [[UInt8]]?
        let watchGlobs: [[UInt8]]?

        init(publish: [String]?, subscribe: [String]?, watch: [String]?, token: TokenClaims?, identity: PresenceIdentity?) {
            self.publish = publish
            self.subscribe = subscribe
            self.watch = watch
            self.token = token
            self.identity = identity
            publishGlobs = publish?.map { Array($0.utf8) }
            subscribeGlobs = subscribe?.map { Array($0.utf8) }
            watchGlobs = watch?.map { Array($0.utf8) }
        }
    }

    private var storage: Storage

    /// Globs of channels, streams and queues the holder may write to; nil = anything.
    public var publish: [String]? { storage.publish }
    /// Globs of channels, patterns, streams and queues the holder may read; nil = anything.
    public var subscribe: [String]? { storage.subscribe }
    /// Globs of keys the holder may watch (`watch` claim); nil = any. Keys are not channels: a
    /// token's `subscribe` globs grant no watch.
    public var watch: [String]? { storage.watch }
    /// The token this grant came from; nil for an API key or with auth off (nothing expires).
    public var token: TokenClaims? { storage.token }
    /// Who a JWT says the holder is (its `sub` and `info` claims), for presence; nil when the
    /// credential names no one (auth off, an API key).
    public var identity: PresenceIdentity? {
        get { storage.identity }
        set {
            storage = Storage(publish: publish, subscribe: subscribe, watch: watch, token: token, identity: newValue)
        }
    }
    /// The same globs as bytes, matched against names' bytes (Redis compares bytes; Swift's
    /// String equality treats canonically equivalent text, `é` and `e` + U+0301, as equal).
    private var publishGlobs: [[UInt8]]? { storage.publishGlobs }
    private var subscribeGlobs: [[UInt8]]? { storage.subscribeGlobs }
    private var watchGlobs: [[UInt8]]? { storage.watchGlobs }

    public init(
        publish: [String]?, subscribe: [String]?, token: TokenClaims? = nil, identity: PresenceIdentity? = nil, watch: [String]? = nil
    ) {
        storage = Storage(publish: publish, subscribe: subscribe, watch: watch, token: token, identity: identity)
    }

    public static let everything = Grant(publish: nil, subscribe: nil)

    /// Whether this grant lets the holder keep reading `name` of `kind` (patterns by
    /// containment, as at subscribe).
    public func maySubscribe(_ kind: SubscriptionKind, _ name: RedisName) -> Bool {
        kind == .pattern ? maySubscribe(pattern: name) : maySubscribe(name)
    }

    public func mayPublish(_ name: RedisName) -> Bool { publishGlobs?.contains { Glob.matches($0, name.bytes) } ?? true }
    public func maySubscribe(_ name: RedisName) -> Bool { subscribeGlobs?.contains { Glob.matches($0, name.bytes) } ?? true }

    /// The first subscription in `initial` that is not readable (patterns by containment).
    public func firstDenied(_ initial: [SubscriptionKind: [RedisName]]) -> RedisName? {
        for (kind, names) in initial {
            if let denied = names.first(where: { !maySubscribe(kind, $0) }) { return denied }
        }
        return nil
    }

    /// Whether every channel `pattern` can match is readable. Glob containment is undecidable
    /// cheaply in general, so this accepts only what is surely contained: a glob identical to
    /// the pattern, or a glob `prefix*` (no other wildcard) whose prefix the pattern's literal
    /// head starts with. Matching the pattern's text against the globs would be unsound:
    /// `room-?` matches the text `room-*`, which reaches `room-secret`.
    public func maySubscribe(pattern: RedisName) -> Bool {
        Self.contains(subscribeGlobs, pattern: pattern)
    }

    /// Whether the holder may watch `key`.
    public func mayWatch(_ key: RedisName) -> Bool { watchGlobs?.contains { Glob.matches($0, key.bytes) } ?? true }

    /// Whether every key `pattern` can match may be watched (containment, as for patterns).
    public func mayWatch(pattern: RedisName) -> Bool { Self.contains(watchGlobs, pattern: pattern) }

    private static func contains(_ globs: [[UInt8]]?, pattern: RedisName) -> Bool {
        guard let globs else { return true }
        let special: Set<UInt8> = [UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "\\")]
        let bytes = pattern.bytes
        let head = bytes.prefix { !special.contains($0) }
        return globs.contains { glob in
            if glob == bytes { return true }
            guard glob.last == UInt8(ascii: "*") else { return false }
            let prefix = glob.dropLast()
            return !prefix.contains(where: special.contains) && head.starts(with: prefix)
        }
    }

}

/// What a grant keeps of the JWT it came from: whom it was issued to, and when it ends.
public struct TokenClaims: Sendable, Equatable {
    /// The `sub` claim as the token has it, if it has one; a refresh must carry the same.
    /// RFC 7519 wants a string, but a number is compared as the value it is (never as "no
    /// subject", which would let any two numeric subjects pass for each other).
    public let subject: JSONValue?
    /// The `exp` claim, Unix seconds; nil for a token that never expires.
    public let expiresAt: Double?

    public init(subject: JSONValue?, expiresAt: Double?) {
        self.subject = subject
        self.expiresAt = expiresAt
    }
}

/// The configured credentials; immutable, shared by every loop.
public struct AccessPolicy: Sendable {
    public let apiKeys: Set<String>
    public let jwtSecret: [UInt8]?
    /// Origins whose pages may call the broker endpoints and read answers (CORS); `*` = any;
    /// empty = Herald's own origin and loopback pages (see `allows(origin:host:)`).
    public let allowedOrigins: [String]

    public init(apiKeys: Set<String> = [], jwtSecret: [UInt8]? = nil, allowedOrigins: [String] = []) {
        self.apiKeys = apiKeys
        self.jwtSecret = jwtSecret
        self.allowedOrigins = allowedOrigins
    }

    public var isEnabled: Bool { !apiKeys.isEmpty || jwtSecret != nil }

    /// The grant of a request: its `Authorization: Bearer` header, else its `token=` query.
    /// Throws 401 when auth is on and the credential is missing, unknown, forged or expired.
    public func grant(for request: HTTPRequest, query: [QueryItem]) throws(HTTPError) -> Grant {
        guard isEnabled else { return .everything }
        var credential: String?
        if let header = request.header("authorization") {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw HTTPError.unauthorized("use Authorization: Bearer <api key or token>")
            }
            credential = String(parts[1]).trimmingWhitespace()
        } else {
            credential = query.last { $0.name == "token" }?.value
        }
        guard let credential, !credential.isEmpty else { throw HTTPError.unauthorized("a credential is required (Authorization: Bearer, or token=)") }
        if apiKeys.contains(credential) { return .everything }
        guard let secret = jwtSecret else { throw HTTPError.unauthorized("unknown API key") }
        do {
            return try Self.grant(token: credential, secret: secret, now: Date().timeIntervalSince1970)
        } catch {
            if case .malformed = error, !apiKeys.isEmpty { throw HTTPError.unauthorized("unknown API key or malformed token") }
            throw Self.httpError(error)
        }
    }

    /// The grant that replaces `current` on a long-lived connection whose client sent a new
    /// token (the `refresh` op). Refused, leaving `current` in force: a connection not opened
    /// with a token (auth off, or an API key, which never expires) with `bad_request`; a
    /// forged, malformed or not-yet-valid token with `unauthorized` (as at connect); an expired
    /// one with `token_expired`; one for another subject (`sub`) with `wrong_subject`.
    public func refreshedGrant(_ token: String, replacing current: Grant, now: Double) throws(HTTPError) -> Grant {
        guard let opened = current.token, let secret = jwtSecret else {
            throw HTTPError.badRequest("this connection was not opened with a token (auth is off, or it used an API key): there is nothing to refresh")
        }
        let grant: Grant
        do {
            grant = try Self.grant(token: token, secret: secret, now: now)
        } catch {
            // Told apart from the other refusals: the client only needs a fresher token.
            throw error == .expired ? HTTPError.tokenExpired : Self.httpError(error)
        }
        guard grant.token?.subject == opened.subject else {
            throw HTTPError.wrongSubject(expected: opened.subject.map { String(decoding: $0.serialized, as: UTF8.self) })
        }
        return grant
    }

    /// A verified token's grant: its `publish`, `subscribe` and `watch` globs, `sub` and `exp`.
    static func grant(token: String, secret: [UInt8], now: Double) throws(JWT.Failure) -> Grant {
        let claims = try JWT.verify(token, secret: secret, now: now)
        func globs(_ name: String) -> [String] { claims[name]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        var expiresAt: Double?
        if case .number(let text)? = claims["exp"] { expiresAt = Double(text) }
        return Grant(
            publish: globs("publish"), subscribe: globs("subscribe"),
            token: TokenClaims(subject: claims["sub"], expiresAt: expiresAt),
            identity: PresenceIdentity(user: claims["sub"]?.stringValue, info: claims["info"]), watch: globs("watch"))
    }

    /// How a token that failed verification is answered (`unauthorized`, as at connect).
    static func httpError(_ failure: JWT.Failure) -> HTTPError {
        switch failure {
        case .expired: HTTPError.unauthorized("the token has expired")
        case .notYetValid: HTTPError.unauthorized("the token is not valid yet")
        case .badSignature: HTTPError.unauthorized("the token's signature does not match")
        case .malformed(let why): HTTPError.unauthorized(why)
        }
    }

    /// Whether a page of `origin` may use Herald, for a request that named `host` in its Host
    /// header. No Origin: not a page's cross-origin call (curl, a backend, a same-origin GET).
    /// With a list: exactly its origins, the Host playing no part (under DNS rebinding a
    /// hostile page chooses it). Without (local development): Herald's own origin, the Origin's
    /// host and port being the Host header's, and pages on this machine (`localhost`,
    /// `127.0.0.1`, `[::1]`, any port): a dev server works, a site visited meanwhile does not.
    public func allows(origin: String?, host: String?) -> Bool {
        guard let origin else { return true }
        if !allowedOrigins.isEmpty { return allowedOrigins.contains("*") || allowedOrigins.contains(origin) }
        let authority: Substring
        if origin.hasPrefix("http://") {
            authority = origin.dropFirst(7)
        } else if origin.hasPrefix("https://") {
            authority = origin.dropFirst(8)
        } else {
            return false  // `null` (sandboxed frames, files, redirects) and other schemes
        }
        if let host, !host.isEmpty, authority.lowercased() == host.lowercased() { return true }
        return Self.isLoopback(authority)
    }

    /// Whether the page that sent `request` (its Origin header) may use Herald.
    public func allowsOrigin(of request: HTTPRequest) -> Bool {
        // Most requests carry no Origin (curl, backends): then Host is not even looked up.
        guard let origin = request.header("origin") else { return true }
        return allows(origin: origin, host: request.header("host"))
    }

    /// Whether `authority` (host, then an optional `:port`) names this machine's loopback.
    static func isLoopback(_ authority: Substring) -> Bool {
        let host: Substring
        if authority.hasPrefix("[") {
            guard let end = authority.firstIndex(of: "]") else { return false }
            host = authority[...end]
        } else {
            host = authority.prefix { $0 != ":" }
        }
        let port = authority[host.endIndex...].utf8
        let digits = port.dropFirst()
        guard
            port.isEmpty
                || (port.first == UInt8(ascii: ":") && (1...5).contains(digits.count)
                    && digits.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else {
            return false
        }
        return ["localhost", "127.0.0.1", "[::1]"].contains(host.lowercased())
    }

    /// Whether a browser made `request` without CORS for a page of another origin: a link, an
    /// image, a form's GET. Only CORS requests and non-GETs carry an Origin, so these pass the
    /// origin check; browsers mark them `Sec-Fetch-Site: cross-site` or `same-site` (Fetch
    /// Metadata). Harmless for a read (the page cannot see the answer), not for a queue pop.
    public static func isNoCORSCrossOrigin(_ request: HTTPRequest) -> Bool {
        guard request.header("origin") == nil, let site = request.header("sec-fetch-site") else { return false }
        return site == "cross-site" || site == "same-site"
    }
}
