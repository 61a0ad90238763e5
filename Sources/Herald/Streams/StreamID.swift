// Redis stream entry ids (`<ms>-<seq>`) and the positions clients may give for them: ids,
// Unix times in milliseconds, ISO-8601 times, `0` (everything), `$` (only new).
import Foundation

/// A stream entry id; ordered as Redis orders them.
public struct StreamID: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var ms: UInt64
    public var seq: UInt64

    public init(ms: UInt64, seq: UInt64 = 0) {
        self.ms = ms
        self.seq = seq
    }

    public static let zero = StreamID(ms: 0)

    /// Parses `ms-seq` (or `ms`, meaning `ms-0`).
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= 2, let ms = UInt64(parts[0]), parts[0].allSatisfy(\.isASCII) else { return nil }
        self.ms = ms
        if parts.count == 2 {
            guard let seq = UInt64(parts[1]), parts[1].allSatisfy(\.isASCII) else { return nil }
            self.seq = seq
        } else {
            seq = 0
        }
    }

    public var description: String { "\(ms)-\(seq)" }

    public static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
}

/// Where a reader starts or a range ends, as a client gave it.
public enum StreamPosition: Equatable, Sendable {
    /// After this id (a resume from the last id seen): exclusive.
    case after(StreamID)
    /// At or after this time (Unix ms): inclusive.
    case time(UInt64)
    /// Only entries added from now on.
    case newOnly

    /// Parses `from=`: `0` = everything, `$` = only new, `ms-seq` = after that id, digits = a
    /// Unix time in ms, or an ISO-8601 time. Nil when it is none of these.
    public static func parse(_ text: String) -> StreamPosition? {
        if text == "$" { return .newOnly }
        if text == "0" || text == "-" { return .after(.zero) }
        if text.contains("-"), !text.contains("T"), let id = StreamID(text) { return .after(id) }
        if let ms = UInt64(text), text.allSatisfy(\.isASCII) { return .time(ms) }
        if let ms = ISOTime.milliseconds(text) { return .time(ms) }
        return nil
    }
}

/// ISO-8601 times (`2026-11-26T12:00:00Z`, with fractions or an offset, or a bare date).
public enum ISOTime {
    public static func milliseconds(_ text: String) -> UInt64? {
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [
            [.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime], [.withFullDate],
        ] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text), date.timeIntervalSince1970 >= 0 {
                return UInt64((date.timeIntervalSince1970 * 1000).rounded())
            }
        }
        return nil
    }
}
