// Fuzz target: credentials and permissions (JWT.verify, AccessPolicy.grant, Glob.matches,
// Grant.maySubscribe(pattern:)), all fed by attacker-controlled text: the bearer token, the
// channel names a client asks for, and the globs of a token's claims.
//
// Input: lines. Line 1 is tried as a bearer token (header and `token=` query) against a policy
// with an API key and a JWT secret: it must never crash, and it may only be accepted when it is
// that key or a token signed with that secret. Line 2 is a channel pattern a client asks to
// PSUBSCRIBE, line 3 a channel; the remaining lines are the globs of a freshly signed token's
// `subscribe`/`publish` claims. Invariants:
//   - sign -> verify round-trips the claims;
//   - a channel is allowed exactly when one of the globs matches it;
//   - a pattern is allowed only when every channel Redis could deliver for it is allowed: its
//     bytes equal an allowed glob's bytes, or its literal head (bytes before the first `*`, `?`,
//     `[` or `\`) starts with the bytes of a `prefix*` glob's prefix. (Redis compares bytes.)
import FuzzSupport
import Herald

let secret = Array("fuzz-secret-fuzz-secret-fuzz-secret!".utf8)
let apiKey = "fuzz-api-key-0123456789"
let policy = AccessPolicy(apiKeys: [apiKey], jwtSecret: secret, allowedOrigins: ["https://a.example"])
let special: Set<UInt8> = [UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "\\")]

func request(authorization: String?) -> HTTPRequest {
    HTTPRequest(method: "GET", target: "/subscribe", headers: authorization.map { [("authorization", $0)] } ?? [])
}

/// A bearer token from the wild: refused unless it is the key or validly signed.
func checkToken(_ token: String) {
    for (auth, query) in [(Optional("Bearer " + token), [QueryItem]()), (nil, [QueryItem(name: "token", value: token)])] {
        do {
            let grant = try policy.grant(for: request(authorization: auth), query: query)
            if token.trimmingWhitespaceForFuzz() != apiKey {
                // Accepted as a JWT: then it really verifies with the secret.
                invariant(
                    (try? JWT.verify(token.trimmingWhitespaceForFuzz(), secret: secret, now: 1e9)) != nil
                        || (try? JWT.verify(token, secret: secret, now: 1e9)) != nil,
                    "a token that does not verify was accepted: \(token.debugDescription)")
            }
            _ = grant.maySubscribe("x")
        } catch {
            invariant(error.status == 401, "a bad credential answered \(error.status)")
        }
    }
    _ = try? JWT.verify(token, secret: secret, now: 1e9)
    // Origins: an attacker's Origin and Host headers. A list admits exactly its entries; the
    // default admits no look-alike of loopback (`localhost.evil`, `localhost:1@evil`).
    let host = token.split(separator: " ").last.map(String.init)
    invariant(policy.allows(origin: token, host: host) == (token == "https://a.example"), "a listed policy admitted \(token.debugDescription)")
    if AccessPolicy().allows(origin: token, host: nil) {
        let authority = token.drop { $0 != "/" }.dropFirst(2)
        let name = authority.hasPrefix("[") ? String(authority.prefix { $0 != "]" }) + "]" : String(authority.prefix { $0 != ":" })
        invariant(
            ["localhost", "127.0.0.1", "[::1]"].contains(name.lowercased()) && !authority.contains("@") && !authority.contains("/"),
            "the default admitted \(token.debugDescription) without a Host")
    }
    _ = AccessPolicy().allows(origin: token, host: host)
}

func checkGlobs(pattern: String, channel: String, globs: [String]) {
    let claims = JSONValue.object([
        "subscribe": .array(globs.map { .string($0) }),
        "publish": .array(globs.map { .string($0) }),
        "exp": .number("4102444800"),
    ])
    let token = JWT.sign(claims, secret: secret)
    guard let verified = try? JWT.verify(token, secret: secret, now: 1e9) else {
        invariant(false, "a token Herald signed does not verify: \(token)"); return
    }
    invariant(verified == claims, "claims changed through sign/verify")
    let grant: Grant
    do {
        grant = try policy.grant(for: request(authorization: "Bearer " + token), query: [])
    } catch {
        invariant(false, "a valid token was refused: \(error.message)"); return
    }
    // Channels: allowed exactly when a glob matches.
    for name in [channel, pattern] {
        let expected = globs.contains { Glob.matches($0, name) }
        invariant(grant.maySubscribe(RedisName(name)) == expected, "maySubscribe(\(name.debugDescription)) disagrees with the globs \(globs)")
        invariant(grant.mayPublish(RedisName(name)) == expected, "mayPublish(\(name.debugDescription)) disagrees with the globs \(globs)")
    }
    // Patterns: allowed only when contained, judged on bytes as Redis does.
    if grant.maySubscribe(pattern: RedisName(pattern)) {
        let p = Array(pattern.utf8)
        let head = p.prefix { !special.contains($0) }
        let contained = globs.contains { glob in
            let g = Array(glob.utf8)
            if g == p { return true }
            guard g.last == UInt8(ascii: "*") else { return false }
            let prefix = g.dropLast()
            return !prefix.contains(where: special.contains) && head.starts(with: prefix)
        }
        invariant(
            contained, "pattern \(describe(p)) allowed by globs \(globs.map { describe(Array($0.utf8)) }) although Redis could deliver channels outside them")
        // Any channel made from the literal pattern (no wildcard) must then be allowed too.
        if !p.contains(where: special.contains) {
            invariant(grant.maySubscribe(RedisName(pattern)), "pattern \(describe(p)) allowed but the same channel is not")
        }
    }
    _ = grant.firstDenied([.channel: [RedisName(channel)], .pattern: [RedisName(pattern)]])
}

runFuzzer { data, size in
    let input = bytes(data, size)
    let text = String(decoding: input, as: UTF8.self)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    checkToken(lines[0])
    if lines.count >= 3 {
        checkGlobs(pattern: lines[1], channel: lines[2], globs: Array(lines.dropFirst(3).prefix(8)))
    }
    // Glob matching must stay cheap whatever the pattern (libFuzzer's -timeout catches blowups).
    if lines.count >= 2 { _ = Glob.matches(lines[0], lines[1]) }
    return 0
}
