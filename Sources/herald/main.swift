// The `herald` command: flags and HERALD_* variables -> Config -> Server. The options, their
// parsing and `--help` all come from `Config.options` in the Herald library.
import FoundationEssentials
import Glibc
import Herald
import Logging

/// Writes one line to standard error.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// EX_USAGE (sysexits.h): the command line itself is malformed.
let usageExitCode: Int32 = 64
/// A well-formed option with a value Herald refuses (README, "Configuration").
let badValueExitCode: Int32 = 2

let arguments: CommandLineArguments
do {
    arguments = try CommandLineArguments.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    printError("herald: \(error)")
    printError("See 'herald --help' for the options.")
    exit(usageExitCode)
}
if arguments.wantsHelp {
    print(CommandLineArguments.help, terminator: "")
    exit(0)
}

let config: Config
do {
    config = try Config.resolve(flags: arguments.flags, environment: ProcessInfo.processInfo.environment)
} catch {
    printError("herald: \(error)")
    exit(badValueExitCode)
}
switch arguments.action {
case nil: break
case "healthcheck": exit(HealthCheck.run(config) ? 0 : 1)
case let other?:
    printError("herald: unknown action '\(other)'; the only one is healthcheck")
    exit(badValueExitCode)
}

let level = config.logLevel
let json = config.logFormat == "json"
LoggingSystem.bootstrap { label in
    if json { return JSONLogHandler(label: label, level: level) }
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = level
    return handler
}
let logger = Logger(label: "herald")
do {
    exit(try Server(config: config, logger: logger).run())
} catch {
    logger.critical("cannot start", metadata: ["error": "\(error)"])
    exit(1)
}
