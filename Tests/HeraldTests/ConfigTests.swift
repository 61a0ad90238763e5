// Config.resolve: defaults, environment vs flags, every refusal naming its option, sizes and
// seconds.
import FoundationEssentials
import Herald
import XCTest

final class ConfigTests: XCTestCase {
    private func resolve(_ flags: [String: String] = [:], env: [String: String] = [:]) throws -> Config {
        try Config.resolve(flags: flags, environment: env)
    }

    /// The option named by the error resolving these flags/variables, or nil if accepted.
    private func refusedOption(_ flags: [String: String] = [:], env: [String: String] = [:]) -> String? {
        do throws(ConfigError) {
            _ = try Config.resolve(flags: flags, environment: env)
            return nil
        } catch {
            XCTAssertTrue(error.description.contains(error.option), error.description)
            return error.option
        }
    }

    func testDefaults() throws {
        let c = try resolve()
        XCTAssertEqual(c.host, "127.0.0.1")
        XCTAssertEqual(c.port, 8080)
        XCTAssertEqual(c.redis, [RedisEndpoint(host: "127.0.0.1", port: 6379)])
        XCTAssertEqual(c.loops, max(1, Config.coreCount - 1), "Redis on this host keeps a core")
        XCTAssertGreaterThanOrEqual(c.loops, 1)
        XCTAssertEqual(c.publicDir, "./public")
        XCTAssertEqual(c.maxBody, 1 << 20)
        XCTAssertEqual(c.maxHeader, 16 * 1024)
        XCTAssertEqual(c.maxMessage, 1 << 20)
        XCTAssertEqual(c.maxOutbound, 4 << 20)
        XCTAssertEqual(c.headerTimeoutMs, 10_000)
        XCTAssertEqual(c.pingIntervalMs, 30_000)
        XCTAssertEqual(c.logLevel, .info)
        XCTAssertFalse(c.echo)
    }

    func testAutomaticLoopCountByCoresAndWhereRedisIs() {
        XCTAssertEqual(Config.automaticLoops(cores: 8, redisIsLocal: true), 7)
        XCTAssertEqual(Config.automaticLoops(cores: 8, redisIsLocal: false), 8)
        XCTAssertEqual(Config.automaticLoops(cores: 2, redisIsLocal: true), 1)
        XCTAssertEqual(Config.automaticLoops(cores: 1, redisIsLocal: true), 1, "never zero loops")
    }

    func testAutomaticLoopsLeaveACoreToALocalRedisOnly() throws {
        XCTAssertEqual(try resolve(["redis": "redis://10.0.0.5:6379"]).loops, Config.coreCount)
        XCTAssertEqual(try resolve(["redis": "redis://localhost:6380"]).loops, max(1, Config.coreCount - 1))
        XCTAssertEqual(
            try resolve(["redis": "redis://127.0.0.1:7000,redis://10.0.0.6:7000"]).loops, Config.coreCount,
            "a cluster with a remote node gets every core")
        XCTAssertEqual(try resolve(["redis": "redis://localhost", "loops": "5"]).loops, 5, "a set value wins")
    }

    func testEnvironmentSetsEveryOption() throws {
        let c = try resolve(env: [
            "HERALD_HOST": "0.0.0.0", "HERALD_PORT": "9000", "HERALD_REDIS_URL": "redis://r:7000/2", "HERALD_LOOPS": "3",
            "HERALD_PUBLIC_DIR": "/srv", "HERALD_MAX_BODY": "2k", "HERALD_MAX_HEADER": "8k", "HERALD_MAX_MESSAGE": "300",
            "HERALD_MAX_OUTBOUND": "1m", "HERALD_HEADER_TIMEOUT": "2", "HERALD_PING_INTERVAL": "0.5",
            "HERALD_KEEPALIVE_TIMEOUT": "7", "HERALD_LOG_LEVEL": "debug", "HERALD_ECHO": "1",
        ])
        XCTAssertEqual(c.host, "0.0.0.0")
        XCTAssertEqual(c.port, 9000)
        XCTAssertEqual(c.redis, [RedisEndpoint(host: "r", port: 7000, database: 2)])
        XCTAssertEqual(c.loops, 3)
        XCTAssertEqual(c.publicDir, "/srv")
        XCTAssertEqual(c.maxBody, 2048)
        XCTAssertEqual(c.maxHeader, 8192)
        XCTAssertEqual(c.maxMessage, 300)
        XCTAssertEqual(c.maxOutbound, 1 << 20)
        XCTAssertEqual(c.headerTimeoutMs, 2000)
        XCTAssertEqual(c.pingIntervalMs, 500)
        XCTAssertEqual(c.keepAliveTimeoutMs, 7000)
        XCTAssertEqual(c.logLevel, .debug)
        XCTAssertTrue(c.echo)
    }

    func testFlagWinsOverEnvironment() throws {
        let c = try resolve(["port": "9001", "log-level": "ERROR"], env: ["HERALD_PORT": "9000", "HERALD_LOG_LEVEL": "trace", "HERALD_LOOPS": "2"])
        XCTAssertEqual(c.port, 9001)
        XCTAssertEqual(c.logLevel, .error)
        XCTAssertEqual(c.loops, 2, "an option without a flag still comes from the environment")
    }

    func testGoodFlagOverridesBadEnvironment() throws {
        XCTAssertEqual(try resolve(["port": "9001"], env: ["HERALD_PORT": "nope"]).port, 9001)
    }

    func testUnrelatedEnvironmentIsIgnored() throws {
        XCTAssertEqual(try resolve(env: ["PORT": "1", "HERALD_PORTS": "2"]).port, 8080)
    }

    func testBadPortsAreRefused() {
        for value in ["0", "70000", "65536", "abc", "-1", "", "80.5"] {
            XCTAssertEqual(refusedOption(["port": value]), "--port", value)
            XCTAssertEqual(refusedOption(env: ["HERALD_PORT": value]), "--port", "env \(value)")
        }
        XCTAssertNil(refusedOption(["port": "65535"]))
        XCTAssertNil(refusedOption(["port": "1"]))
    }

    func testBadLoopsAreRefused() {
        for value in ["0", "257", "many", "-2"] {
            XCTAssertEqual(refusedOption(["loops": value]), "--loops", value)
        }
    }

    func testBadSizesAreRefused() {
        XCTAssertEqual(refusedOption(["max-body": "-5"]), "--max-body")
        XCTAssertEqual(refusedOption(["max-body": "lots"]), "--max-body")
        XCTAssertEqual(refusedOption(["max-body": "2g"]), "--max-body", "above 1 GiB")
        XCTAssertEqual(refusedOption(["max-body": "9999999999999999999k"]), "--max-body", "overflow")
        XCTAssertEqual(refusedOption(["max-header": "100"]), "--max-header", "below 1024")
        XCTAssertEqual(refusedOption(["max-message": "124"]), "--max-message", "a message must fit a control frame")
        XCTAssertEqual(refusedOption(["max-outbound": "1k5"]), "--max-outbound")
        XCTAssertEqual(refusedOption(env: ["HERALD_MAX_BODY": "1t"]), "--max-body")
    }

    func testSizeSuffixes() throws {
        XCTAssertEqual(try resolve(["max-body": "64k"]).maxBody, 65536)
        XCTAssertEqual(try resolve(["max-body": "1m"]).maxBody, 1 << 20)
        XCTAssertEqual(try resolve(["max-body": "1M"]).maxBody, 1 << 20)
        XCTAssertEqual(try resolve(["max-body": "64KB"]).maxBody, 65536)
        XCTAssertEqual(try resolve(["max-body": "2MiB"]).maxBody, 2 << 20)
        XCTAssertEqual(try resolve(["max-body": "1g"]).maxBody, 1 << 30)
        XCTAssertEqual(try resolve(["max-body": " 100 "]).maxBody, 100)
        XCTAssertEqual(try resolve(["max-body": "0"]).maxBody, 0)
    }

    func testSecondsWithFractions() throws {
        XCTAssertEqual(try resolve(["header-timeout": "0.25"]).headerTimeoutMs, 250)
        XCTAssertEqual(try resolve(["header-timeout": "1.5"]).headerTimeoutMs, 1500)
        XCTAssertEqual(try resolve(["ping-interval": "86400"]).pingIntervalMs, 86_400_000)
        XCTAssertEqual(try resolve(["keepalive-timeout": "3"]).keepAliveTimeoutMs, 3000)
    }

    func testBadSecondsAreRefused() {
        for value in ["0", "-1", "abc", "nan", "inf", "86401", ""] {
            XCTAssertEqual(refusedOption(["header-timeout": value]), "--header-timeout", value)
            XCTAssertEqual(refusedOption(["ping-interval": value]), "--ping-interval", value)
        }
    }

    /// A positive duration that rounds to 0 ms passes the "> 0" check but is a zero timeout
    /// (and a zero housekeeping period in LoopContext); it must be refused like "0".
    func testSecondsThatRoundToZeroMillisecondsAreRefused() {
        XCTAssertEqual(refusedOption(["header-timeout": "0.0001"]), "--header-timeout")
        XCTAssertEqual(refusedOption(["ping-interval": "0.0004"]), "--ping-interval")
    }

    func testLogLevels() throws {
        for level in ["trace", "debug", "info", "notice", "warning", "error", "critical"] {
            XCTAssertEqual(try resolve(["log-level": level]).logLevel.rawValue, level)
        }
        XCTAssertEqual(refusedOption(["log-level": "bogus"]), "--log-level")
        XCTAssertEqual(refusedOption(env: ["HERALD_LOG_LEVEL": "verbose"]), "--log-level")
    }

    func testRedisURLs() throws {
        XCTAssertEqual(
            try resolve(["redis": "redis://:pw@cache:6380/3"]).redis,
            [RedisEndpoint(host: "cache", port: 6380, password: "pw", database: 3)])
        XCTAssertEqual(try resolve(["redis": "redis://a,redis://b:7001"]).redis.map(\.description), ["a:6379", "b:7001"])
        for value in ["http://h", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x", "h:6379", "redis://a,", ""] {
            XCTAssertEqual(refusedOption(["redis": value]), "--redis", value)
        }
        XCTAssertEqual(refusedOption(env: ["HERALD_REDIS_URL": "tcp://h"]), "--redis")
    }

    func testEmptyHostAndPublicDirAreRefused() {
        XCTAssertEqual(refusedOption(["host": ""]), "--host")
        XCTAssertEqual(refusedOption(["public": ""]), "--public")
    }

    func testEcho() throws {
        for value in ["1", "true", "YES", "on"] { XCTAssertTrue(try resolve(env: ["HERALD_ECHO": value]).echo, value) }
        for value in ["0", "false", "off", ""] { XCTAssertFalse(try resolve(env: ["HERALD_ECHO": value]).echo, value) }
        XCTAssertEqual(refusedOption(env: ["HERALD_ECHO": "maybe"]), "--echo")
    }

    func testErrorMessageNamesOptionAndValue() {
        do throws(ConfigError) {
            _ = try Config.resolve(flags: ["port": "70000"], environment: [:])
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.option, "--port")
            XCTAssertEqual(error.value, "70000")
            XCTAssertTrue(error.description.hasPrefix("invalid --port '70000': "), error.description)
        }
    }

    /// The options added with auth, limits and logs refuse bad values naming themselves, and
    /// never echo a secret back.
    func testAuthLimitAndLogOptionsRefuseBadValues() throws {
        XCTAssertEqual(refusedOption(["api-keys": "short"]), "--api-keys")
        XCTAssertEqual(refusedOption(env: ["HERALD_JWT_SECRET": "too-short-secret"]), "--jwt-secret")
        XCTAssertEqual(refusedOption(["allowed-origins": "example.com"]), "--allowed-origins")
        XCTAssertEqual(refusedOption(["slow-consumer": "ignore"]), "--slow-consumer")
        XCTAssertEqual(refusedOption(["log-format": "xml"]), "--log-format")
        XCTAssertEqual(refusedOption(["max-subscriptions": "0"]), "--max-subscriptions")
        XCTAssertEqual(refusedOption(["max-pending": "many"]), "--max-pending")
        XCTAssertEqual(refusedOption(["max-blocking": "0"]), "--max-blocking")
        XCTAssertEqual(refusedOption(["claim-idle": "-1"]), "--claim-idle")
        XCTAssertEqual(refusedOption(["queue-lease": "0.1"]), "--queue-lease", "shorter than a renewal round trip")
        XCTAssertEqual(try resolve(["queue-lease": "1.5"]).queueLeaseMs, 1500)
        XCTAssertEqual(try resolve().queueLeaseMs, 30_000)
        XCTAssertEqual(refusedOption(["blocking-idle": "0"]), "--blocking-idle")
        XCTAssertEqual(try resolve(env: ["HERALD_BLOCKING_IDLE": "0.5"]).blockingIdleMs, 500)
        XCTAssertEqual(try resolve().blockingIdleMs, 30_000)
        XCTAssertEqual(refusedOption(["redis": "redis://a:1,redis://b:2/3"]), "--redis")
        do throws(ConfigError) {
            _ = try Config.resolve(flags: ["jwt-secret": "leaky-but-short"], environment: [:])
            XCTFail("a short secret was accepted")
        } catch {
            XCTAssertFalse(error.description.contains("leaky"), error.description)
        }
        let c = try Config.resolve(
            flags: [
                "api-keys": "0123456789abcdef, fedcba9876543210", "slow-consumer": "CLOSE",
                "allowed-origins": "https://a.example,*", "log-format": "json",
            ], environment: [:])
        XCTAssertEqual(c.apiKeys, ["0123456789abcdef", "fedcba9876543210"])
        XCTAssertEqual(c.slowConsumerPolicy, .close)
        XCTAssertEqual(c.allowedOrigins, ["https://a.example", "*"])
        XCTAssertTrue(c.access.isEnabled)
        XCTAssertEqual(c.maxConnections, 0, "0 = sized from the file limit at start")
    }

    /// README.md's "Configuration" table: (flag, variable, default cell) per row.
    private func readmeConfigurationRows() throws -> [(flag: String, environment: String, shownDefault: String)] {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let section = try XCTUnwrap(
            text.split(separator: "\n## ").first { $0.hasPrefix("Configuration\n") },
            "README has no Configuration section")
        var rows: [(String, String, String)] = []
        for line in section.split(separator: "\n") where line.hasPrefix("| `--") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            XCTAssertGreaterThanOrEqual(cells.count, 5, String(line))
            guard cells.count >= 5 else { continue }
            func code(_ cell: String) -> String { cell.hasPrefix("`") && cell.hasSuffix("`") ? String(cell.dropFirst().dropLast()) : cell }
            rows.append((String(code(cells[1]).dropFirst(2)), code(cells[2]), cells[3]))
        }
        return rows
    }

    /// The README's configuration table lists exactly the options of `Config.options`, with
    /// the same variables and the defaults `--help` shows (a value in backticks, prose as is,
    /// "none"/"off" for an unset option/switch; a switch's variable written `HERALD_X=1`).
    func testReadmeConfigurationTableMatchesTheOptions() throws {
        let rows = try readmeConfigurationRows()
        XCTAssertEqual(rows.map(\.flag).sorted(), Config.options.map(\.flag).sorted(), "README rows vs Config.options")
        XCTAssertEqual(Set(rows.map(\.flag)).count, rows.count, "a flag has two README rows")
        for row in rows {
            guard let option = Config.option(flag: row.flag) else { continue }
            XCTAssertEqual(row.environment, option.environment + (option.isSwitch ? "=1" : ""), option.name)
            let expected: String
            switch option.shownDefault {
            case .value(let value): expected = "`\(value)`"
            case .described(let text): expected = text
            case .none: expected = option.isSwitch ? "off" : "none"
            }
            XCTAssertEqual(row.shownDefault, expected, "README default of \(option.name)")
        }
    }

    /// A default shown as a value is the default: read back through its own option, it
    /// leaves `Config()` unchanged (so `--help` and the README cannot show a stale number).
    func testShownDefaultsReadBackAsTheDefaults() throws {
        let defaults = try resolve()
        for option in Config.options {
            guard case .value(let shown) = option.shownDefault else { continue }
            let c = try resolve([option.flag: shown])
            XCTAssertEqual(String(describing: c), String(describing: defaults), "\(option.name) \(shown)")
        }
        XCTAssertEqual(Config.option(flag: "max-body")?.shownDefault, .value("1m"))
        XCTAssertEqual(Config.option(flag: "max-header")?.shownDefault, .value("16k"))
        XCTAssertEqual(Config.option(flag: "queue-lease")?.shownDefault, .value("30"))
        XCTAssertEqual(Config.option(flag: "redis")?.shownDefault, .value("redis://127.0.0.1:6379"))
    }

    func testEveryOptionHasItsOwnFlagAndVariable() {
        XCTAssertEqual(Set(Config.options.map(\.flag)).count, Config.options.count)
        XCTAssertEqual(Set(Config.options.map(\.environment)).count, Config.options.count)
        for option in Config.options {
            XCTAssertTrue(option.environment.hasPrefix("HERALD_"), option.environment)
            XCTAssertFalse(option.help.isEmpty, option.name)
        }
    }
}
