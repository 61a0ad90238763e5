// Percent-decoding of URL paths and query strings (RFC 3986 §2.1), and query parsing.

public enum PercentDecoding {
    /// Decodes `%XX` escapes (and `+` as space when `plusIsSpace`); nil on a malformed escape.
    public static func decode<S: StringProtocol>(_ text: S, plusIsSpace: Bool = false) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var it = Array(text.utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%") {
                guard let h = it.popFirst(), let l = it.popFirst(), let hv = hex(h), let lv = hex(l) else { return nil }
                out.append(hv << 4 | lv)
            } else if c == UInt8(ascii: "+") && plusIsSpace {
                out.append(32)
            } else {
                out.append(c)
            }
        }
        return out
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
            guard let name = decode(parts[0], plusIsSpace: true),
                  let value = decode(parts.count > 1 ? parts[1] : "", plusIsSpace: true),
                  UTF8Validation.isValid(name), UTF8Validation.isValid(value) else { return nil }
            items.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return items
    }
}
