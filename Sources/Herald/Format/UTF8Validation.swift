// Strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), as
// RFC 6455 §8.1 requires of text frames, and as the JSON envelope needs to choose base64.

public enum UTF8Validation {
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var it = bytes.makeIterator()
        while let b0 = it.next() {
            if b0 < 0x80 { continue }
            let need: Int
            var lower: UInt8 = 0x80
            var upper: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lower = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: need = 2
            case 0xED: need = 2; upper = 0x9F
            case 0xF0: need = 3; lower = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; upper = 0x8F
            default: return false
            }
            for i in 0..<need {
                guard let b = it.next() else { return false }
                if i == 0 {
                    guard b >= lower && b <= upper else { return false }
                } else {
                    guard b >= 0x80 && b <= 0xBF else { return false }
                }
            }
        }
        return true
    }
}
