// AccessPolicy and Grant: which credential a request carries (API key, Bearer JWT, `token=`),
// the 401s for missing or bad ones, what a token's globs allow, and the Origin check.
import Herald
import XCTest

final class AccessPolicyTests: XCTestCase {
    private let secret = Array("0123456789abcdef0123456789abcdef".utf8)
    private let apiKey = "key-0123456789abcdef"
    /// 2100-01-01T00:00:00Z: far enough that these tokens stay valid.
    private let future = "4102444800"

    private func request(authorization: String? = nil) -> HTTPRequest {
        HTTPRequest(method: "GET", target: "/subscribe", headers: authorization.map { [("authorization", $0)] } ?? [])
    }

    private func token(_ claims: JSONObject) -> String {
        var claims = claims
        if claims["exp"] == nil { claims["exp"] = .number(future) }
        return JWT.sign(.object(claims), secret: secret)
    }

    private func globs(_ names: [String]) -> JSONValue { .array(names.map { .string($0) }) }

    /// The grant a token with these claim lists yields, through the real verification path.
    private func grant(publish: [String]? = nil, subscribe: [String]? = nil) throws -> Grant {
        var claims: JSONObject = [:]
        if let publish { claims["publish"] = globs(publish) }
        if let subscribe { claims["subscribe"] = globs(subscribe) }
        return try AccessPolicy(jwtSecret: secret).grant(for: request(authorization: "Bearer \(token(claims))"), query: [])
    }

    /// The error `grant` throws, or nil when it grants.
    private func refusal(_ policy: AccessPolicy, _ request: HTTPRequest, query: [QueryItem] = []) -> HTTPError? {
        do throws(HTTPError) {
            _ = try policy.grant(for: request, query: query)
            return nil
        } catch {
            return error
        }
    }

    private func assertUnauthorized(_ error: HTTPError?, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(error?.status, 401, file: file, line: line)
        XCTAssertEqual(error?.code, "unauthorized", file: file, line: line)
        XCTAssertEqual(error?.headers["WWW-Authenticate"], "Bearer", file: file, line: line)
    }

    private func isEverything(_ grant: Grant) -> Bool { grant.publish == nil && grant.subscribe == nil }

    // MARK: Grant

    /// Fuzzing found this: `é*` (U+00E9) let `e` + U+0301 through, because Swift compares
    /// Strings by canonical equivalence while Redis compares bytes.
    func testPatternPrefixesCompareBytesNotCharacters() throws {
        let holder = try grant(subscribe: ["\u{e9}*"])
        XCTAssertTrue(holder.maySubscribe(pattern: "\u{e9}t\u{e9}-*"))
        XCTAssertFalse(holder.maySubscribe(pattern: "e\u{301}t\u{e9}-*"))
        XCTAssertFalse(try grant(subscribe: ["e\u{301}*"]).maySubscribe(pattern: "\u{e9}*"))
    }

    func testEverythingAllowsAnyName() {
        XCTAssertTrue(Grant.everything.mayPublish("anything"))
        XCTAssertTrue(Grant.everything.maySubscribe(""))
        XCTAssertTrue(Grant.everything.maySubscribe(pattern: "*"))
        XCTAssertNil(Grant.everything.firstDenied([.channel: ["a"], .pattern: ["*"], .shard: ["s"]]))
    }

    func testMayPublishAndMaySubscribeFollowTheirOwnGlobs() throws {
        let g = try grant(publish: ["chat.room-7"], subscribe: ["chat.room-7", "news.*"])
        XCTAssertTrue(g.mayPublish("chat.room-7"))
        XCTAssertFalse(g.mayPublish("chat.room-8"))
        XCTAssertFalse(g.mayPublish("news.eu"), "subscribe globs do not grant publishing")
        XCTAssertTrue(g.maySubscribe("chat.room-7"))
        XCTAssertTrue(g.maySubscribe("news.eu"))
        XCTAssertFalse(g.maySubscribe("news"))
        XCTAssertFalse(g.maySubscribe("chat.room-8"))
    }

    func testMissingClaimsGrantNothing() throws {
        let g = try grant()
        XCTAssertEqual(g.publish, [])
        XCTAssertEqual(g.subscribe, [])
        XCTAssertFalse(g.mayPublish("a"))
        XCTAssertFalse(g.maySubscribe("a"))
        XCTAssertFalse(g.maySubscribe(pattern: "a"))
    }

    func testNonStringGlobsAreIgnored() throws {
        let t = token(["publish": .array([.number("1"), .string("a"), .null])])
        let g = try AccessPolicy(jwtSecret: secret).grant(for: request(authorization: "Bearer \(t)"), query: [])
        XCTAssertEqual(g.publish, ["a"])
    }

    func testPatternIdenticalToAGlobIsAllowed() throws {
        let g = try grant(subscribe: ["news.*", "room-?", "h[ae]llo"])
        XCTAssertTrue(g.maySubscribe(pattern: "news.*"))
        XCTAssertTrue(g.maySubscribe(pattern: "room-?"))
        XCTAssertTrue(g.maySubscribe(pattern: "h[ae]llo"))
    }

    func testPatternUnderAPrefixGlobIsAllowed() throws {
        let g = try grant(subscribe: ["news.*"])
        XCTAssertTrue(g.maySubscribe(pattern: "news.eu.*"))
        XCTAssertTrue(g.maySubscribe(pattern: "news.eu.?"))
        XCTAssertTrue(g.maySubscribe(pattern: "news.[ab]"))
        XCTAssertTrue(g.maySubscribe(pattern: "news.eu"), "a pattern with no wildcard")
    }

    func testPatternThatReachesBeyondTheGlobIsRefused() throws {
        let g = try grant(subscribe: ["news.*"])
        XCTAssertFalse(g.maySubscribe(pattern: "new*"))
        XCTAssertFalse(g.maySubscribe(pattern: "*"))
        XCTAssertFalse(g.maySubscribe(pattern: "news?*"), "news?* reaches newsX")
        XCTAssertFalse(g.maySubscribe(pattern: "news[.]*"))
        XCTAssertFalse(g.maySubscribe(pattern: #"news\.*"#), "escapes are not unpicked: refusing is the safe side")
        XCTAssertFalse(g.maySubscribe(pattern: "?ews.*"))
        XCTAssertFalse(g.maySubscribe(pattern: "sports.*"))
    }

    func testPatternIsNotMatchedAsTextAgainstTheGlobs() throws {
        // `room-?` matches the text `room-*`, but the pattern `room-*` reaches `room-secret`.
        let g = try grant(subscribe: ["room-?"])
        XCTAssertTrue(g.maySubscribe("room-*"), "as a channel name, room-* is one literal name")
        XCTAssertFalse(g.maySubscribe(pattern: "room-*"))
        XCTAssertFalse(g.maySubscribe(pattern: "room-1*"))
    }

    func testGlobWithAWildcardBeforeTheStarOnlyAllowsItself() throws {
        let g = try grant(subscribe: ["news.?*", "[ab]*"])
        XCTAssertTrue(g.maySubscribe(pattern: "news.?*"))
        XCTAssertFalse(g.maySubscribe(pattern: "news.?x*"))
        XCTAssertFalse(g.maySubscribe(pattern: "a*"))
    }

    func testFirstDeniedChecksChannelsLiterallyAndPatternsByContainment() throws {
        let g = try grant(subscribe: ["news.*", "room-?"])
        XCTAssertNil(g.firstDenied([.channel: ["news.eu", "room-1"], .pattern: ["news.eu.*"], .shard: ["room-2"]]))
        XCTAssertEqual(g.firstDenied([.channel: ["news.eu", "sports", "weather"]]), "sports")
        XCTAssertEqual(g.firstDenied([.pattern: ["news.*", "room-*"]]), "room-*")
        XCTAssertNil(g.firstDenied([.channel: ["room-*"]]))
        XCTAssertEqual(g.firstDenied([.shard: ["secret"]]), "secret")
        XCTAssertNil(g.firstDenied([:]))
    }

    // MARK: AccessPolicy.grant

    func testAuthOffGrantsEverythingWhateverTheRequestCarries() throws {
        let policy = AccessPolicy()
        XCTAssertFalse(policy.isEnabled)
        XCTAssertTrue(isEverything(try policy.grant(for: request(), query: [])))
        XCTAssertTrue(isEverything(try policy.grant(for: request(authorization: "Basic Zm9vOmJhcg=="), query: [QueryItem(name: "token", value: "junk")])))
    }

    func testEitherCredentialTurnsAuthOn() {
        XCTAssertTrue(AccessPolicy(apiKeys: [apiKey]).isEnabled)
        XCTAssertTrue(AccessPolicy(jwtSecret: secret).isEnabled)
    }

    func testAPIKeyInTheHeaderGrantsEverything() throws {
        let policy = AccessPolicy(apiKeys: [apiKey, "other-key-0123456789"], jwtSecret: secret)
        XCTAssertTrue(isEverything(try policy.grant(for: request(authorization: "Bearer \(apiKey)"), query: [])))
        XCTAssertTrue(
            isEverything(try policy.grant(for: request(authorization: "bearer \(apiKey)"), query: [])),
            "the auth scheme is case-insensitive (RFC 9110 §11.1)")
        XCTAssertTrue(isEverything(try policy.grant(for: request(authorization: "Bearer  \(apiKey) "), query: [])))
    }

    func testBearerJWTGrantsItsGlobs() throws {
        let t = token(["sub": .string("user-42"), "publish": globs(["chat.room-7"]), "subscribe": globs(["news.*"])])
        let g = try AccessPolicy(apiKeys: [apiKey], jwtSecret: secret).grant(for: request(authorization: "Bearer \(t)"), query: [])
        XCTAssertEqual(g.publish, ["chat.room-7"])
        XCTAssertEqual(g.subscribe, ["news.*"])
    }

    func testTokenQueryParameterWhenThereIsNoHeader() throws {
        let t = token(["subscribe": globs(["news.*"])])
        let policy = AccessPolicy(apiKeys: [apiKey], jwtSecret: secret)
        XCTAssertEqual(
            try policy.grant(for: request(), query: [QueryItem(name: "channel", value: "news.eu"), QueryItem(name: "token", value: t)]).subscribe, ["news.*"])
        XCTAssertTrue(isEverything(try policy.grant(for: request(), query: [QueryItem(name: "token", value: apiKey)])))
        XCTAssertTrue(
            isEverything(try policy.grant(for: request(), query: [QueryItem(name: "token", value: "junk"), QueryItem(name: "token", value: apiKey)])),
            "the last token= counts")
    }

    func testHeaderWinsOverTheQuery() throws {
        let policy = AccessPolicy(apiKeys: [apiKey], jwtSecret: secret)
        XCTAssertTrue(isEverything(try policy.grant(for: request(authorization: "Bearer \(apiKey)"), query: [QueryItem(name: "token", value: "junk")])))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer junk"), query: [QueryItem(name: "token", value: apiKey)]))
    }

    func testMissingCredentialIs401() {
        let policy = AccessPolicy(apiKeys: [apiKey], jwtSecret: secret)
        assertUnauthorized(refusal(policy, request()))
        assertUnauthorized(refusal(policy, request(), query: [QueryItem(name: "token", value: "")]))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer")))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer ")))
        assertUnauthorized(refusal(policy, request(authorization: "")))
    }

    func testNonBearerSchemeIs401() {
        let policy = AccessPolicy(apiKeys: [apiKey])
        assertUnauthorized(refusal(policy, request(authorization: "Basic Zm9vOmJhcg==")))
        assertUnauthorized(refusal(policy, request(authorization: apiKey)))
        assertUnauthorized(refusal(policy, request(authorization: "Token \(apiKey)")))
    }

    func testUnknownKeyForgedExpiredOrEarlyTokenIs401() {
        let keysOnly = AccessPolicy(apiKeys: [apiKey])
        assertUnauthorized(refusal(keysOnly, request(authorization: "Bearer not-the-key-0123456")))
        // A token is refused when no JWT secret is configured.
        assertUnauthorized(refusal(keysOnly, request(authorization: "Bearer \(token([:]))")))
        let policy = AccessPolicy(apiKeys: [apiKey], jwtSecret: secret)
        let forged = JWT.sign(.object(["exp": .number(future)]), secret: Array("another-secret-another-secret-xx".utf8))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer \(forged)")))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer \(token(["exp": .number("1000000000")]))")))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer \(token(["nbf": .number(future)]))")))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer a.b.c")))
    }

    func testAPIKeyIsNotAcceptedAsAPrefixOrInAnotherCase() {
        let policy = AccessPolicy(apiKeys: [apiKey])
        assertUnauthorized(refusal(policy, request(authorization: "Bearer \(apiKey.dropLast())")))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer \(apiKey)x")))
        assertUnauthorized(refusal(policy, request(authorization: "Bearer \(apiKey.uppercased())")))
    }

    // MARK: Origins

    func testWithoutAListOnlyHeraldsOwnOriginAndLoopbackPages() {
        let policy = AccessPolicy()
        let host = "herald.internal:8080"
        XCTAssertTrue(policy.allows(origin: nil, host: host), "no Origin header: not a page's cross-origin call")
        // Herald's own origin: the demo page it serves, under whatever name it was reached.
        XCTAssertTrue(policy.allows(origin: "http://herald.internal:8080", host: host))
        XCTAssertTrue(policy.allows(origin: "https://herald.internal:8080", host: host), "behind a TLS proxy passing Host")
        XCTAssertTrue(policy.allows(origin: "https://Herald.Internal:8080", host: host), "hosts compare without case")
        XCTAssertFalse(policy.allows(origin: "http://herald.internal:8081", host: host), "another port is another origin")
        XCTAssertFalse(policy.allows(origin: "http://herald.internal", host: host))
        XCTAssertFalse(policy.allows(origin: "http://herald.internal:8080", host: nil))
        XCTAssertFalse(policy.allows(origin: "http://", host: ""), "an empty Host is no origin")
        // Pages on this machine (a dev server on another port).
        for page in [
            "http://localhost:5173", "http://127.0.0.1:3000", "http://[::1]:8081", "https://localhost",
            "http://LocalHost:4200", "http://127.0.0.1",
        ] {
            XCTAssertTrue(policy.allows(origin: page, host: host), page)
        }
        // Pages of other sites, and look-alikes of loopback.
        for page in [
            "https://evil.example", "http://localhost.evil.example", "http://127.0.0.1.evil.example",
            "http://localhost:80@evil.example", "http://localhost:", "http://localhost:123456",
            "http://localhost:+80", "http://[::1", "http://[::2]:80", "http://127.0.0.2", "ws://localhost",
            "null", "file://", "", "localhost",
        ] {
            XCTAssertFalse(policy.allows(origin: page, host: host), page)
        }
    }

    func testOnlyListedOriginsWhenConfigured() {
        let policy = AccessPolicy(allowedOrigins: ["https://app.example", "http://localhost:8080"])
        let host = "127.0.0.1:8080"
        XCTAssertTrue(policy.allows(origin: "https://app.example", host: host))
        XCTAssertTrue(policy.allows(origin: "http://localhost:8080", host: host))
        XCTAssertFalse(policy.allows(origin: "https://evil.example", host: host))
        XCTAssertFalse(policy.allows(origin: "http://app.example", host: host))
        XCTAssertFalse(policy.allows(origin: "https://app.example.evil.example", host: host))
        XCTAssertFalse(policy.allows(origin: "http://localhost:8081", host: host), "a list replaces the loopback default")
        XCTAssertFalse(policy.allows(origin: "null", host: host))
        XCTAssertTrue(policy.allows(origin: nil, host: host), "no Origin header: not a browser")
        // With a list the Host header widens nothing: under DNS rebinding the page chooses it.
        XCTAssertFalse(policy.allows(origin: "http://evil.example:8080", host: "evil.example:8080"))
    }

    func testStarAllowsEveryOrigin() {
        let policy = AccessPolicy(allowedOrigins: ["https://app.example", "*"])
        XCTAssertTrue(policy.allows(origin: "https://evil.example", host: "127.0.0.1:8080"))
        XCTAssertTrue(policy.allows(origin: "null", host: nil))
    }

    func testAllowsOriginOfARequestReadsOriginAndHost() {
        let policy = AccessPolicy()
        func request(_ headers: [(String, String)]) -> HTTPRequest { HTTPRequest(method: "POST", target: "/publish/a", headers: headers) }
        XCTAssertTrue(policy.allowsOrigin(of: request([("host", "h:1"), ("origin", "http://h:1")])))
        XCTAssertFalse(policy.allowsOrigin(of: request([("host", "h:1"), ("origin", "http://evil.example")])))
        XCTAssertTrue(policy.allowsOrigin(of: request([("host", "h:1")])))
    }

    func testNoCORSCrossOriginRequestsAreThoseMarkedBySecFetchSiteWithoutOrigin() {
        func request(_ headers: [(String, String)]) -> HTTPRequest { HTTPRequest(method: "GET", target: "/queues/jobs", headers: headers) }
        XCTAssertTrue(AccessPolicy.isNoCORSCrossOrigin(request([("sec-fetch-site", "cross-site")])))
        XCTAssertTrue(AccessPolicy.isNoCORSCrossOrigin(request([("sec-fetch-site", "same-site")])))
        XCTAssertFalse(AccessPolicy.isNoCORSCrossOrigin(request([("sec-fetch-site", "same-origin")])))
        XCTAssertFalse(AccessPolicy.isNoCORSCrossOrigin(request([("sec-fetch-site", "none")])), "typed in the address bar")
        XCTAssertFalse(AccessPolicy.isNoCORSCrossOrigin(request([])), "curl, backends, old browsers")
        XCTAssertFalse(
            AccessPolicy.isNoCORSCrossOrigin(request([("sec-fetch-site", "cross-site"), ("origin", "https://a.example")])),
            "a CORS request is judged by its Origin")
    }

    // MARK: Refresh (the `refresh` op of a long-lived connection)

    private let now = 1_800_000_000.0

    /// The grant of a connection opened with a token for `subject` that has these claims.
    private func opened(subject: String? = "alice", exp: Double? = 1_800_000_060) throws -> Grant {
        var claims: JSONObject = ["subscribe": globs(["news.*"])]
        if let subject { claims["sub"] = .string(subject) }
        if let exp { claims["exp"] = .number(String(Int(exp))) }
        let before = Grant(publish: [], subscribe: [], token: TokenClaims(subject: subject.map { .string($0) }, expiresAt: nil))
        return try AccessPolicy(jwtSecret: secret).refreshedGrant(JWT.sign(.object(claims), secret: secret), replacing: before, now: now)
    }

    private func refreshRefusal(_ token: String, replacing grant: Grant, policy: AccessPolicy? = nil) -> HTTPError? {
        do throws(HTTPError) {
            _ = try (policy ?? AccessPolicy(jwtSecret: secret)).refreshedGrant(token, replacing: grant, now: now)
            return nil
        } catch {
            return error
        }
    }

    func testATokenGrantKeepsItsSubjectAndExp() throws {
        let grant = try self.grant(subscribe: ["a"])
        XCTAssertEqual(grant.token, TokenClaims(subject: nil, expiresAt: Double(future)))
        let withSubject = try AccessPolicy(jwtSecret: secret).grant(
            for: request(authorization: "Bearer \(token(["sub": .string("bob")]))"), query: [])
        XCTAssertEqual(withSubject.token?.subject, .string("bob"))
        XCTAssertNil(try AccessPolicy(apiKeys: [apiKey], jwtSecret: secret).grant(for: request(authorization: "Bearer \(apiKey)"), query: []).token)
    }

    func testRefreshReplacesTheGrantsForTheSameSubject() throws {
        let current = try opened()
        let token = JWT.sign(.object(["sub": .string("alice"), "subscribe": globs(["room-?"]), "exp": .number("1800000120")]), secret: secret)
        let refreshed = try AccessPolicy(jwtSecret: secret).refreshedGrant(token, replacing: current, now: now)
        XCTAssertEqual(refreshed.subscribe, ["room-?"])
        XCTAssertEqual(refreshed.publish, [])
        XCTAssertEqual(refreshed.token, TokenClaims(subject: .string("alice"), expiresAt: 1_800_000_120))
    }

    func testRefreshRefusesBadExpiredAndOtherSubjectTokens() throws {
        let current = try opened()
        let forged = JWT.sign(.object(["sub": .string("alice")]), secret: Array("another-secret-another-secret-xx".utf8))
        XCTAssertEqual(refreshRefusal(forged, replacing: current)?.code, "unauthorized")
        XCTAssertEqual(refreshRefusal("a.b", replacing: current)?.code, "unauthorized")
        let expired = JWT.sign(.object(["sub": .string("alice"), "exp": .number("1799999999")]), secret: secret)
        XCTAssertEqual(refreshRefusal(expired, replacing: current)?.code, "token_expired")
        XCTAssertEqual(refreshRefusal(expired, replacing: current)?.status, 401)
        let mallory = JWT.sign(.object(["sub": .string("mallory")]), secret: secret)
        XCTAssertEqual(refreshRefusal(mallory, replacing: current)?.code, "wrong_subject")
        let anonymous = JWT.sign(.object([:]), secret: secret)
        XCTAssertEqual(refreshRefusal(anonymous, replacing: current)?.code, "wrong_subject")
        XCTAssertNil(refreshRefusal(anonymous, replacing: try opened(subject: nil)), "no sub then, no sub now")
        let numeric = { (sub: String) in Grant(publish: [], subscribe: [], token: TokenClaims(subject: .number(sub), expiresAt: nil)) }
        let as43 = JWT.sign(.object(["sub": .number("43")]), secret: secret)
        XCTAssertEqual(refreshRefusal(as43, replacing: numeric("42"))?.code, "wrong_subject", "numeric subjects are not 'no subject'")
        XCTAssertNil(refreshRefusal(as43, replacing: numeric("43")))
        XCTAssertEqual(refreshRefusal(JWT.sign(.object(["sub": .string("43")]), secret: secret), replacing: numeric("43"))?.code, "wrong_subject")
    }

    func testRefreshNeedsAConnectionOpenedWithAToken() {
        let token = JWT.sign(.object(["sub": .string("alice")]), secret: secret)
        XCTAssertEqual(refreshRefusal(token, replacing: .everything)?.code, "bad_request", "an API key or auth off")
        let opened = Grant(publish: nil, subscribe: nil, token: TokenClaims(subject: .string("alice"), expiresAt: nil))
        XCTAssertEqual(refreshRefusal(token, replacing: opened, policy: AccessPolicy())?.code, "bad_request", "no secret to verify with")
    }

    func testMaySubscribeByKindJudgesPatternsByContainment() {
        let grant = Grant(publish: [], subscribe: ["news.*"])
        XCTAssertTrue(grant.maySubscribe(.channel, "news.a"))
        XCTAssertTrue(grant.maySubscribe(.shard, "news.a"))
        XCTAssertTrue(grant.maySubscribe(.pattern, "news.*"))
        XCTAssertFalse(grant.maySubscribe(.pattern, "n*"))
        XCTAssertFalse(grant.maySubscribe(.channel, "room-1"))
    }

    func testGrantsMatchNamesByBytes() {
        let composed = RedisName("caf\u{00E9}")
        let decomposed = RedisName("cafe\u{0301}")
        let grant = Grant(publish: ["caf\u{00E9}*"], subscribe: ["caf\u{00E9}", "caf\u{00E9}-*"])
        XCTAssertTrue(grant.mayPublish(composed))
        XCTAssertFalse(grant.mayPublish(decomposed), "equal as text, another name to Redis")
        XCTAssertTrue(grant.maySubscribe(composed))
        XCTAssertFalse(grant.maySubscribe(decomposed))
        XCTAssertTrue(grant.maySubscribe(pattern: RedisName("caf\u{00E9}-*")))
        XCTAssertFalse(grant.maySubscribe(pattern: RedisName("cafe\u{0301}-*")))
        XCTAssertEqual(grant.firstDenied([.channel: [composed, decomposed]]), decomposed)
    }
}
