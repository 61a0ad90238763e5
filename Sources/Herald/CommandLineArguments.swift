// The `herald` command line, read against `Config.options`: `--flag value`, `--flag=value`,
// switches, `--help`, and the `healthcheck` action. `--help` text is generated from the same
// table, so an option cannot be parsed without being listed, or listed with a stale default.

public struct CommandLineArguments: Equatable, Sendable {
    /// Option values by flag name without dashes, as `Config.resolve` takes them; a switch
    /// given on the command line is "true". A repeated option keeps its last value.
    public var flags: [String: String] = [:]
    /// The one positional argument (`healthcheck`), if given.
    public var action: String?
    /// `--help` or `-h` was given.
    public var wantsHelp = false

    public init() {}

    /// A command line that names no known option, lacks a value, or has a stray argument:
    /// reported before any value is looked at (exit 64, EX_USAGE).
    public struct UsageError: Error, CustomStringConvertible, Equatable, Sendable {
        public let description: String
    }

    /// Reads the arguments after the program name. A value option takes the next argument
    /// whatever it looks like (`--max-body -5` is refused by `--max-body`, not as a stray
    /// option); `--` ends options.
    public static func parse(_ arguments: [String]) throws(UsageError) -> CommandLineArguments {
        var parsed = CommandLineArguments()
        var index = arguments.startIndex
        var optionsEnded = false
        while index < arguments.endIndex {
            let argument = arguments[index]
            index += 1
            if optionsEnded || !argument.hasPrefix("-") || argument == "-" {
                guard parsed.action == nil else { throw UsageError(description: "unexpected argument '\(argument)'") }
                parsed.action = argument
                continue
            }
            if argument == "--" { optionsEnded = true; continue }
            if argument == "--help" || argument == "-h" { parsed.wantsHelp = true; continue }
            let body = argument.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let inlineValue = body.firstIndex(of: "=").map { String(body[body.index(after: $0)...]) }
            guard argument.hasPrefix("--"), let option = Config.option(flag: name) else {
                throw UsageError(description: "unknown option '\(argument.prefix { $0 != "=" })'")
            }
            if option.isSwitch {
                guard inlineValue == nil else { throw UsageError(description: "\(option.name) takes no value") }
                parsed.flags[option.flag] = "true"
            } else if let value = inlineValue {
                parsed.flags[option.flag] = value
            } else {
                guard index < arguments.endIndex else { throw UsageError(description: "missing value for \(option.usage)") }
                parsed.flags[option.flag] = arguments[index]
                index += 1
            }
        }
        return parsed
    }

    /// The text of `herald --help`: one entry per option of `Config.options`.
    public static var help: String {
        var lines = [
            "An HTTP/WebSocket gateway that lets web clients use Redis as a message broker.",
            "",
            "USAGE: herald [<options>] [healthcheck]",
            "",
            "Every option can also be set by its environment variable; a flag wins over the variable.",
            "Sizes take k/m/g suffixes (powers of 1024); times are in seconds.",
            "",
            "`herald healthcheck` asks the Herald configured by the same flags and variables for",
            "/healthz on loopback and exits 0 when it answers 200 (for container HEALTHCHECKs).",
            "",
            "OPTIONS:",
        ]
        for option in Config.options {
            let shown: String
            switch option.shownDefault {
            case .value(let value), .described(let value): shown = "\(option.environment), default \(value)"
            case .none: shown = option.isSwitch ? "\(option.environment)=1" : option.environment
            }
            lines.append("  " + option.usage)
            lines += wrapped(option.help, width: 88, indent: "        ")
            lines += wrapped("[\(shown)]", width: 88, indent: "        ")
        }
        lines.append("  -h, --help")
        lines.append("        Show this help.")
        return lines.joined(separator: "\n") + "\n"
    }

    /// `text` broken at spaces into lines of at most `width` columns, each after `indent`.
    static func wrapped(_ text: String, width: Int, indent: String) -> [String] {
        var lines: [String] = []
        var line = indent
        for word in text.split(separator: " ") {
            if line.count > indent.count && line.count + 1 + word.count > width {
                lines.append(line)
                line = indent
            }
            line += (line.count > indent.count ? " " : "") + word
        }
        lines.append(line)
        return lines
    }
}

extension Config.Option {
    /// `--max-body <size>`, or `--echo` for a switch: how `--help` and usage errors show it.
    public var usage: String { valueName.map { "\(name) <\($0)>" } ?? name }
}
