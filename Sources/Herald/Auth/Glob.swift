// Redis-style glob matching (`*`, `?`, `[abc]`, `[^a]`, `\x`) for channel permissions.

public enum Glob {
    /// Whether `text` matches `pattern`.
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        match(Array(pattern.utf8)[...], Array(text.utf8)[...])
    }

    /// Whether the bytes `text` match the bytes `pattern`, as Redis matches (byte by byte).
    public static func matches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        match(pattern[...], text[...])
    }

    private static func match(_ p: ArraySlice<UInt8>, _ t: ArraySlice<UInt8>) -> Bool {
        var p = p, t = t
        // Backtracking point for the last `*`.
        var star: (ArraySlice<UInt8>, ArraySlice<UInt8>)?
        while true {
            if let c = p.first {
                switch c {
                case UInt8(ascii: "*"):
                    p = p.dropFirst()
                    star = (p, t)
                    continue
                case UInt8(ascii: "?"):
                    if !t.isEmpty {
                        p = p.dropFirst()
                        t = t.dropFirst()
                        continue
                    }
                case UInt8(ascii: "["):
                    if let ch = t.first, let (matched, rest) = matchClass(p.dropFirst(), ch), matched {
                        p = rest
                        t = t.dropFirst()
                        continue
                    }
                default:
                    var literal = c
                    var rest = p.dropFirst()
                    if c == UInt8(ascii: "\\"), let escaped = rest.first {
                        literal = escaped
                        rest = rest.dropFirst()
                    }
                    if t.first == literal {
                        p = rest
                        t = t.dropFirst()
                        continue
                    }
                }
            } else if t.isEmpty {
                return true
            }
            // Mismatch: let the last `*` swallow one more byte, if there is one.
            guard let (starP, starT) = star, !starT.isEmpty else { return false }
            star = (starP, starT.dropFirst())
            p = starP
            t = starT.dropFirst()
        }
    }

    /// Matches one byte against a `[...]` class; returns whether it matched and the pattern
    /// after the class, or nil for an unterminated class (which then matches nothing).
    private static func matchClass(_ p: ArraySlice<UInt8>, _ ch: UInt8) -> (Bool, ArraySlice<UInt8>)? {
        var p = p
        var negate = false
        if p.first == UInt8(ascii: "^") {
            negate = true
            p = p.dropFirst()
        }
        var matched = false
        var first = true
        while let c = p.first {
            if c == UInt8(ascii: "]") && !first { return (matched != negate, p.dropFirst()) }
            first = false
            var low = c
            p = p.dropFirst()
            if low == UInt8(ascii: "\\"), let escaped = p.first {
                low = escaped
                p = p.dropFirst()
            }
            if p.count >= 2, p.first == UInt8(ascii: "-"), p[p.startIndex + 1] != UInt8(ascii: "]") {
                let high = p[p.startIndex + 1]
                p = p.dropFirst(2)
                if min(low, high) <= ch && ch <= max(low, high) { matched = true }
            } else if low == ch {
                matched = true
            }
        }
        return nil
    }
}
