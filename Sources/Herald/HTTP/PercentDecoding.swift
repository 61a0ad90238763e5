// Percent-decoding of URL paths and query strings (RFC 3986 §2.1), and query parsing.

public enum PercentDecoding {
    /// Decodes `%XX` escapes (and `+` as space when `plusIsSpace`); nil on a malformed escape.
    public static func decode<S: StringProtocol>(_ text: S, plusIsSpace: Bool = false) -> [UInt8]? {
        let utf8 = text.utf8
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = utf8.startIndex
        while i != utf8.endIndex {
            let c = utf8[i]
            i = utf8.index(after: i)
            if c == UInt8(ascii: "%") {
                guard i != utf8.endIndex, let high = hex(utf8[i]) else { return nil }
                i = utf8.index(after: i)
                guard i != utf8.endIndex, let low = hex(utf8[i]) else { return nil }
                i = utf8.index(after: i)
                out.append(high << 4 | low)
            } else if c == UInt8(ascii: "+") && plusIsSpace {
                out.append(32)
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// A path segment (or, with `plusIsSpace`, a query name or value) decoded to the bytes it
    /// names: nil on a malformed escape or when the bytes are not UTF-8. Bytes without escapes
    /// are taken as they are (a `Substring` is UTF-8 already).
    public static func decodeUTF8(_ text: Substring, plusIsSpace: Bool = false) -> [UInt8]? {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || ($0 == UInt8(ascii: "+") && plusIsSpace) }) else {
            // A native string's bytes are contiguous: one copy, not the generic element loop.
            return text.utf8.withContiguousStorageIfAvailable(Array.init) ?? Array(text.utf8)
        }
        guard let bytes = decode(text, plusIsSpace: plusIsSpace), UTF8Validation.isValid(bytes) else { return nil }
        return bytes
    }

    /// A path segment decoded to a Redis name, byte for byte as the client encoded it.
    public static func decodeName(_ text: Substring) -> RedisName? {
        decodeUTF8(text).map(RedisName.init(bytes:))
    }

    /// A path segment (or, with `plusIsSpace`, a query name or value) decoded to text.
    public static func decodeText(_ text: Substring, plusIsSpace: Bool = false) -> String? {
        decodeUTF8(text, plusIsSpace: plusIsSpace).map { String(decoding: $0, as: UTF8.self) }
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 65...70: return c - 55
        case 97...102: return c - 87
        default: return nil
        }
    }

    /// Query parameters in order; names decoded as text, values kept as their decoded bytes.
    /// Nil on a malformed escape or a name or value that is not UTF-8.
    public static func query<S: StringProtocol>(_ query: S) -> [QueryItem]? {
        var items: [QueryItem] = []
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decodeText(Substring(parts[0]), plusIsSpace: true),
                let value = decodeUTF8(parts.count > 1 ? Substring(parts[1]) : "", plusIsSpace: true)
            else { return nil }
            items.append(QueryItem(name: name, bytes: value))
        }
        return items
    }
}

/// One `name=value` of a query string, decoded. The value stays bytes (valid UTF-8), so a
/// channel, stream, group or queue named in it reaches Redis exactly as the client encoded it.
public struct QueryItem: Sendable {
    public let name: String
    /// The decoded value.
    public let bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    public init(name: String, value: String) { self.init(name: name, bytes: Array(value.utf8)) }

    /// The value as text, for parameters that are not names (`token`, `from`, `format`, ...).
    public var value: String { String(decoding: bytes, as: UTF8.self) }

    /// The value as a Redis name.
    public var redisName: RedisName { RedisName(bytes: bytes) }
}
