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

    /// A path segment (or, with `plusIsSpace`, a query name or value) decoded to text: nil on a
    /// malformed escape or when the bytes are not UTF-8. Text without escapes is taken as it is,
    /// without a copy through bytes.
    public static func decodeText(_ text: Substring, plusIsSpace: Bool = false) -> String? {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || ($0 == UInt8(ascii: "+") && plusIsSpace) }) else {
            return String(text)
        }
        guard let bytes = decode(text, plusIsSpace: plusIsSpace), UTF8Validation.isValid(bytes) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 65...70: return c - 55
        case 97...102: return c - 87
        default: return nil
        }
    }

    /// Query parameters in order; names and values decoded as UTF-8. Nil on bad encoding.
    public static func query<S: StringProtocol>(_ query: S) -> [(name: String, value: String)]? {
        var items: [(String, String)] = []
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decodeText(Substring(parts[0]), plusIsSpace: true),
                let value = decodeText(parts.count > 1 ? Substring(parts[1]) : "", plusIsSpace: true)
            else { return nil }
            items.append((name, value))
        }
        return items
    }
}
