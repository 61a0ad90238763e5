// Redis stream entry ids (`<ms>-<seq>`) and the positions clients may give for them: ids,
// Unix times in milliseconds, ISO-8601 times, `0` (everything), `$` (only new).

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

/// ISO-8601 times: `2026-11-26`, `2026-11-26T12:00:00Z`, with fractions of a second and an
/// offset (`+01:00`) allowed. Impossible dates (February 30th, 25:61) are refused, not rolled
/// over.
public enum ISOTime {
    /// Milliseconds since the Unix epoch, or nil when `text` is not a valid ISO-8601 time.
    public static func milliseconds(_ text: String) -> UInt64? {
        var s = Array(text.utf8)[...]
        func digits(_ n: Int) -> Int? {
            guard s.count >= n, s.prefix(n).allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
            let value = s.prefix(n).reduce(0) { $0 * 10 + Int($1 - 48) }
            s = s.dropFirst(n)
            return value
        }
        func expect(_ c: Character) -> Bool {
            guard s.first == c.asciiValue else { return false }
            s = s.dropFirst()
            return true
        }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2),
            (1...12).contains(month), (1...daysIn(month, year)).contains(day)
        else { return nil }
        var seconds = daysFromCivil(year, month, day) * 86_400
        var millis = 0
        if !s.isEmpty {
            guard expect("T") || expect("t") || expect(" "),
                let hour = digits(2), expect(":"), let minute = digits(2), hour <= 23, minute <= 59
            else { return nil }
            var second = 0
            if expect(":") {
                guard let sec = digits(2), sec <= 60 else { return nil }
                second = sec
                if expect(".") || expect(",") {
                    var scale = 100
                    var any = false
                    while let d = s.first, d >= 48, d <= 57 {
                        millis += Int(d - 48) * scale
                        scale /= 10
                        any = true
                        s = s.dropFirst()
                    }
                    guard any else { return nil }
                }
            }
            seconds += hour * 3600 + minute * 60 + second
            if expect("Z") || expect("z") {
            } else if let sign = s.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
                s = s.dropFirst()
                guard let offsetHours = digits(2), expect(":") || true, let offsetMinutes = digits(2),
                    offsetHours <= 23, offsetMinutes <= 59
                else { return nil }
                let offset = offsetHours * 3600 + offsetMinutes * 60
                seconds += sign == UInt8(ascii: "+") ? -offset : offset
            } else {
                return nil
            }
        }
        guard s.isEmpty, seconds >= 0 else { return nil }
        return UInt64(seconds) * 1000 + UInt64(millis)
    }

    static func daysIn(_ month: Int, _ year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
