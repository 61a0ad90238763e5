// A swift-log handler writing one JSON object per line to standard error, for log pipelines
// that parse structured logs (`--log-format json`).
import Glibc
import Logging

public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// UTC time with milliseconds, ISO-8601.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let millis = Int(now.tv_nsec) / 1_000_000
        let fraction = String(millis + 1000).dropFirst()
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) + ".\(fraction)Z"
    }

    public func log(event: LogEvent) {
        var json = JSONWriter(capacity: 128)
        json.object { o in
            o.field("time", Self.timestamp())
            o.field("level", event.level.rawValue)
            o.field("logger", label)
            o.field("message", "\(event.message)")
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            for key in merged.keys.sorted() { o.field(key, "\(merged[key]!)") }
        }
        var line = json.bytes
        line.append(10)
        // One write(2) per line, so lines from several loops never interleave.
        line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}
