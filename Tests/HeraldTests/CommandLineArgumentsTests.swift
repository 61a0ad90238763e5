// CommandLineArguments: the `herald` command line read against Config.options, and the
// `--help` text generated from the same table.
import Herald
import XCTest

final class CommandLineArgumentsTests: XCTestCase {
    private func parse(_ arguments: String...) throws(CommandLineArguments.UsageError) -> CommandLineArguments {
        try CommandLineArguments.parse(arguments)
    }

    private func usageError(_ arguments: String...) -> String? {
        do throws(CommandLineArguments.UsageError) {
            _ = try CommandLineArguments.parse(arguments)
            return nil
        } catch {
            return error.description
        }
    }

    func testValuesSeparateOrAfterEquals() throws {
        let parsed = try parse("--port", "9000", "--max-body=64k", "--redis", "redis://a,redis://b")
        XCTAssertEqual(parsed.flags, ["port": "9000", "max-body": "64k", "redis": "redis://a,redis://b"])
        XCTAssertNil(parsed.action)
        XCTAssertFalse(parsed.wantsHelp)
    }

    /// A value that looks like an option is still the value, so `--max-body -5` is refused by
    /// `--max-body` (exit 2, naming it) rather than as an unknown option `-5`.
    func testAValueMayStartWithADash() throws {
        XCTAssertEqual(try parse("--max-body", "-5").flags, ["max-body": "-5"])
        XCTAssertEqual(try parse("--max-body=-5").flags, ["max-body": "-5"])
        XCTAssertEqual(try parse("--host", "--port").flags, ["host": "--port"])
        XCTAssertEqual(try parse("--host=").flags, ["host": ""], "an empty value reaches the option's own check")
    }

    func testSwitchesTakeNoValue() throws {
        XCTAssertEqual(try parse("--echo", "--access-log").flags, ["echo": "true", "access-log": "true"])
        XCTAssertEqual(usageError("--echo=1"), "--echo takes no value")
        XCTAssertEqual(try Config.resolve(flags: parse("--access-log").flags, environment: [:]).accessLog, true)
    }

    func testTheLastOfARepeatedOptionWins() throws {
        XCTAssertEqual(try parse("--port", "1", "--port", "2").flags, ["port": "2"])
    }

    func testHealthcheckAction() throws {
        let parsed = try parse("--port", "9000", "healthcheck")
        XCTAssertEqual(parsed.action, "healthcheck")
        XCTAssertEqual(parsed.flags, ["port": "9000"])
        XCTAssertEqual(try parse("healthcheck", "--port", "9000").flags, ["port": "9000"])
        XCTAssertEqual(try parse("--", "healthcheck").action, "healthcheck")
        XCTAssertEqual(usageError("healthcheck", "again"), "unexpected argument 'again'")
    }

    func testHelp() throws {
        XCTAssertTrue(try parse("--help").wantsHelp)
        XCTAssertTrue(try parse("--port", "1", "-h").wantsHelp)
    }

    func testUnknownOrIncompleteOptionsAreUsageErrors() {
        XCTAssertEqual(usageError("--no-such-flag"), "unknown option '--no-such-flag'")
        XCTAssertEqual(usageError("--no-such-flag=3"), "unknown option '--no-such-flag'")
        XCTAssertEqual(usageError("-p", "80"), "unknown option '-p'")
        XCTAssertEqual(usageError("-port", "80"), "unknown option '-port'", "options take two dashes")
        XCTAssertEqual(usageError("--PORT", "80"), "unknown option '--PORT'")
        XCTAssertEqual(usageError("---port", "80"), "unknown option '---port'")
        XCTAssertEqual(usageError("--port"), "missing value for --port <port>")
    }

    /// Every option of the table is parsed by its flag: none is left out of the command line.
    func testEveryOptionHasItsFlag() throws {
        for option in Config.options {
            let parsed = option.isSwitch ? try parse(option.name) : try parse(option.name, "x")
            XCTAssertEqual(parsed.flags.keys.first, option.flag, option.name)
        }
    }

    /// `--help` lists each option exactly once, as its own entry with its variable and its
    /// default, and says how to run the healthcheck.
    func testHelpListsEveryOptionOnceWithVariableAndDefault() {
        let help = CommandLineArguments.help
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for option in Config.options {
            let entries = lines.filter { $0.hasPrefix("  --") && $0.dropFirst(2).split(separator: " ").first.map(String.init) == option.name }
            XCTAssertEqual(entries, ["  " + option.usage], option.name)
            // As a whole name (one variable may begin another's: HERALD_COMPRESSION_MIN).
            let named = help.ranges(of: option.environment).filter { range in
                guard let next = help[range.upperBound...].first else { return true }
                return !(next == "_" || next.isUppercase)
            }
            XCTAssertEqual(named.count, 1, option.environment)
            switch option.shownDefault {
            case .value(let shown), .described(let shown):
                XCTAssertTrue(
                    help.replacing("\n        ", with: " ").contains("\(option.environment), default \(shown)]"),
                    option.name)
            case .none: break
            }
        }
        XCTAssertTrue(help.contains("--max-body <size>"))
        XCTAssertTrue(help.contains("[HERALD_ACCESS_LOG=1]"))
        XCTAssertTrue(help.contains("herald healthcheck"))
        XCTAssertFalse(lines.contains { $0.count > 88 }, "lines fit 88 columns")
    }
}
