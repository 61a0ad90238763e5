// The logger handed to Herald types under test: quiet unless HERALD_TEST_LOG names a level.
import Foundation
import Logging

extension Logger {
    /// `critical` by default so test output stays readable; `HERALD_TEST_LOG=debug` shows all.
    public static func test(_ label: String = "herald-test") -> Logger {
        var logger = Logger(label: label)
        let level = ProcessInfo.processInfo.environment["HERALD_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
        logger.logLevel = level ?? .critical
        return logger
    }
}
