// Fuzz target: configuration from flags and HERALD_* variables (Config.resolve), the command
// line (CommandLineArguments.parse) and Redis URLs (RedisEndpoint.parseList / parse,
// SentinelTarget.parse).
//
// The input is text, one setting a line: `name=value` where a name starting with HERALD_ is an
// environment variable and anything else a flag name (`port`, `max-body`, ...); a line without
// `=` is a Redis URL list on its own. Invariants:
//   - a configuration Herald accepts is within every documented range;
//   - a flag wins over its variable: resolving with both equals resolving with the merged flags;
//   - the flag lines written as a command line (`--name=value` and `--name value` in turn)
//     parse back to the same flags when every name is a value option, and never to a flag
//     that is not in Config.options;
//   - every accepted Redis URL names a printable host, a port in 1-65535 and a db in 0-65535,
//     and writing it back as a URL (credentials percent-encoded) parses to the same endpoint.
import FuzzSupport
import Herald

func checkEndpoint(_ e: RedisEndpoint, from text: String) {
    invariant(!e.host.isEmpty, "empty host from \(text.debugDescription)")
    invariant(
        e.host.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "/") }, "unprintable host \(e.host.debugDescription) from \(text.debugDescription)")
    invariant((1...65535).contains(e.port), "port \(e.port) from \(text.debugDescription)")
    invariant((0...65535).contains(e.database), "database \(e.database) from \(text.debugDescription)")
    _ = e.description
    // Hosts that could not be written back unambiguously are left out of the round trip.
    guard !e.host.contains(where: { "[]@".contains($0) }) else { return }
    let host = e.host.contains(":") ? "[\(e.host)]" : e.host
    var url = e.tls ? "rediss://" : "redis://"
    if e.username != nil || e.password != nil {
        url += percentEncoded(e.username ?? "")
        if let password = e.password { url += ":" + percentEncoded(password) }
        url += "@"
    }
    url += "\(host):\(e.port)/\(e.database)"
    do {
        var again = try RedisEndpoint.parse(url)
        // The TLS context comes from --redis-ca and the like, not from the URL.
        again.tlsContext = e.tlsContext
        invariant(
            again == e,
            "\(text.debugDescription) -> \(e) (user \(String(describing: e.username)), password \(String(describing: e.password))) -> \(url.debugDescription) -> \(again)"
        )
    } catch {
        invariant(false, "\(text.debugDescription) parsed, but its rewrite \(url.debugDescription) is refused: \(error)")
    }
}

func percentEncoded(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case 48...57, 65...90, 97...122, UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        default:
            let hex = Array("0123456789ABCDEF")
            out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
        }
    }
    return out
}

func checkURLs(_ text: String) {
    do {
        let endpoints = try RedisEndpoint.parseList(text)
        invariant(!endpoints.isEmpty, "parseList accepted \(text.debugDescription) with no endpoint")
        for e in endpoints { checkEndpoint(e, from: text) }
    } catch {
        invariant(error.option == "--redis", "a Redis URL error names \(error.option)")
        _ = error.description
    }
}

/// A `redis+sentinel://` URL Herald accepts names at least one sentinel, each a printable host
/// and a port in 1-65535, a master name without spaces or control characters, a db in 0-65535.
func checkSentinelURL(_ text: String) {
    do {
        let t = try SentinelTarget.parse(text)
        invariant(!t.sentinels.isEmpty, "no sentinel from \(text.debugDescription)")
        for e in t.sentinels { checkEndpoint(e, from: text) }
        invariant(!t.masterName.isEmpty && t.masterName.utf8.allSatisfy { $0 > 32 && $0 != 127 }, "master name \(t.masterName.debugDescription)")
        invariant((0...65535).contains(t.database), "database \(t.database) from \(text.debugDescription)")
        _ = t.description
    } catch {
        invariant(error.option == "--redis", "a Sentinel URL error names \(error.option)")
    }
}

func checkConfig(_ c: Config) {
    invariant(!c.host.isEmpty, "empty host")
    invariant((1...65535).contains(c.port), "port \(c.port)")
    invariant((1...256).contains(c.loops), "loops \(c.loops)")
    invariant(!c.redis.isEmpty, "no Redis endpoint")
    invariant(!c.publicDir.isEmpty, "empty public dir")
    invariant((0...(1 << 30)).contains(c.maxBody), "max body \(c.maxBody)")
    invariant((1024...(1 << 20)).contains(c.maxHeader), "max header \(c.maxHeader)")
    invariant((125...(1 << 30)).contains(c.maxMessage), "max message \(c.maxMessage)")
    invariant((1024...(1 << 30)).contains(c.maxOutbound), "max outbound \(c.maxOutbound)")
    for (name, ms) in [("header timeout", c.headerTimeoutMs), ("ping interval", c.pingIntervalMs), ("keep-alive timeout", c.keepAliveTimeoutMs)] {
        // Positive (a zero timer would fire at once) and at most a day.
        invariant(ms > 0 && ms <= 86_400_000, "\(name) of \(ms) ms")
    }
    for e in c.redis { checkEndpoint(e, from: "(config)") }
    invariant(!c.redisCluster || c.redis.allSatisfy { $0.database == 0 }, "a cluster with a database other than 0")
    invariant((1...10_000).contains(c.maxBlocking), "max blocking \(c.maxBlocking)")
    invariant(c.claimIdleMs > 0 && c.claimIdleMs <= 86_400_000, "claim idle \(c.claimIdleMs) ms")
    invariant(
        c.apiKeys.allSatisfy { $0.count >= 16 && $0 == $0.trimmingWhitespaceForFuzz() && !$0.contains(",") },
        "an API key that is short, padded or holds a comma")
    invariant(c.jwtSecret.map { $0.utf8.count >= 32 } ?? true, "a JWT secret under 32 bytes")
    invariant(
        c.allowedOrigins.allSatisfy { $0 == "*" || $0.hasPrefix("http://") || $0.hasPrefix("https://") },
        "allowed origin that is not * or http(s)://: \(c.allowedOrigins)")
    // 0 = not given: sized from the file limit at start.
    invariant(c.maxConnections == 0 || (1...1_000_000).contains(c.maxConnections), "max connections \(c.maxConnections)")
    invariant((1...1_000_000).contains(c.maxSubscriptions), "max subscriptions \(c.maxSubscriptions)")
    invariant((1...10_000_000).contains(c.maxPending), "max pending \(c.maxPending)")
    invariant(["text", "json"].contains(c.logFormat), "log format \(c.logFormat)")
    _ = c.access.isEnabled
}

struct Resolved: Equatable {
    var host: String, port: Int, redis: [RedisEndpoint], loops: Int, publicDir: String
    var maxBody: Int, maxHeader: Int, maxMessage: Int, maxOutbound: Int
    var headerTimeoutMs: Int64, pingIntervalMs: Int64, keepAliveTimeoutMs: Int64
    var logLevel: String, echo: Bool
    var redisCluster: Bool, maxBlocking: Int, claimIdleMs: Int64, apiKeys: [String], jwtSecret: String?
    var allowedOrigins: [String], maxConnections: Int, maxSubscriptions: Int, maxPending: Int
    var slowConsumer: String, logFormat: String, accessLog: Bool

    init(_ c: Config) {
        // Each resolve builds its own TLS context (compared by identity): compare the URLs' part.
        redis = c.redis.map { endpoint in
            var plain = endpoint
            plain.tlsContext = nil
            return plain
        }
        host = c.host; port = c.port; loops = c.loops; publicDir = c.publicDir
        maxBody = c.maxBody; maxHeader = c.maxHeader; maxMessage = c.maxMessage; maxOutbound = c.maxOutbound
        headerTimeoutMs = c.headerTimeoutMs; pingIntervalMs = c.pingIntervalMs; keepAliveTimeoutMs = c.keepAliveTimeoutMs
        logLevel = c.logLevel.rawValue; echo = c.echo
        redisCluster = c.redisCluster; maxBlocking = c.maxBlocking; claimIdleMs = c.claimIdleMs
        apiKeys = c.apiKeys; jwtSecret = c.jwtSecret; allowedOrigins = c.allowedOrigins
        maxConnections = c.maxConnections; maxSubscriptions = c.maxSubscriptions; maxPending = c.maxPending
        slowConsumer = c.slowConsumerPolicy.rawValue; logFormat = c.logFormat; accessLog = c.accessLog
    }
}

func resolve(_ flags: [String: String], _ environment: [String: String]) -> Result<Resolved, ConfigError> {
    do throws(ConfigError) {
        let c = try Config.resolve(flags: flags, environment: environment)
        checkConfig(c)
        return .success(Resolved(c))
    } catch {
        _ = error.description
        return .failure(error)
    }
}

func checkCommandLine(_ pairs: [(name: String, value: String)]) {
    var arguments: [String] = []
    var expected: [String: String] = [:]
    for (i, pair) in pairs.enumerated() {
        if i % 2 == 0 { arguments.append("--\(pair.name)=\(pair.value)") } else { arguments += ["--\(pair.name)", pair.value] }
        expected[pair.name] = pair.value
    }
    let onlyValueOptions = pairs.allSatisfy { Config.option(flag: $0.name).map { !$0.isSwitch } ?? false }
    do throws(CommandLineArguments.UsageError) {
        let parsed = try CommandLineArguments.parse(arguments)
        invariant(parsed.flags.keys.allSatisfy { Config.option(flag: $0) != nil }, "an unknown flag parsed from \(arguments)")
        if onlyValueOptions {
            invariant(parsed.flags == expected, "\(arguments) parsed to \(parsed.flags), not \(expected)")
            invariant(parsed.action == nil && !parsed.wantsHelp, "\(arguments) parsed to an action or --help")
        }
    } catch {
        invariant(!onlyValueOptions, "a command line of value options refused: \(arguments): \(error)")
    }
}

runFuzzer { data, size in
    let input = bytes(data, size)
    let text = String(decoding: input, as: UTF8.self)
    checkURLs(text)
    checkSentinelURL(text)

    var flags: [String: String] = [:]
    var environment: [String: String] = [:]
    var flagLines: [(name: String, value: String)] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        guard let eq = line.firstIndex(of: "=") else {
            if !line.isEmpty { checkURLs(String(line)) }
            continue
        }
        let name = String(line[..<eq])
        let value = String(line[line.index(after: eq)...])
        if name.hasPrefix("HERALD_") { environment[name] = value } else { flags[name] = value; flagLines.append((name, value)) }
    }
    checkCommandLine(flagLines)
    let both = resolve(flags, environment)
    var merged = flags
    for option in Config.options where flags[option.flag] == nil {
        if let value = environment[option.environment] { merged[option.flag] = value }
    }
    let flagsOnly = resolve(merged, [:])
    switch (both, flagsOnly) {
    case (.success(let a), .success(let b)):
        invariant(a == b, "flags+environment and merged flags resolve differently")
    case (.failure(let a), .failure(let b)):
        invariant(a.option == b.option && a.value == b.value, "different refusals: \(a) vs \(b)")
    default:
        invariant(false, "flags+environment and merged flags disagree on validity: \(both) vs \(flagsOnly)")
    }
    return 0
}
