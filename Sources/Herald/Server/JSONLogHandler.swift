// A swift-log handler writing one JSON object per line to standard error, for log pipelines
// that parse structured logs (`--log-format json`).
import Foundation
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

    public func log(event: LogEvent) {
        var json = JSONWriter(capacity: 128)
        json.object { o in
            o.field("time", ISO8601DateFormatter().string(from: Date()))
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
