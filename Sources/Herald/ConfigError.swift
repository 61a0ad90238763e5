// A configuration value refused at start, naming the option, the value and the reason.

public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let option: String
    public let value: String
    public let reason: String

    public init(_ option: String, _ value: String, _ reason: String) {
        self.option = option
        self.value = value
        self.reason = reason
    }

    public var description: String { "invalid \(option) '\(value)': \(reason)" }
}
