// A publish's payload: its send time (monotonic ns) in decimal, padded with `x` to the
// requested size, so it is URL-safe (Webdis takes it in the path) and valid UTF-8 (Herald sends
// it as a text frame, inside a JSON string without escaping).

enum Payload {
    /// Appends the payload for a publish sent at `sentAt` to `out`.
    static func append(sentAt: UInt64, size: Int, into out: inout [UInt8]) {
        var digits: (UInt64, Int) = (sentAt, 0)
        var scratch = [UInt8](repeating: 0, count: 20)
        repeat {
            scratch[19 - digits.1] = UInt8(ascii: "0") + UInt8(digits.0 % 10)
            digits.0 /= 10
            digits.1 += 1
        } while digits.0 > 0
        out.append(contentsOf: scratch[(20 - digits.1)...])
        if size > digits.1 { out.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: size - digits.1)) }
    }

    /// The send time at the start of `bytes`, or nil when they do not start with digits.
    @inline(__always)
    static func sentAt(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        var value: UInt64 = 0
        var n = 0
        while n < bytes.count && n < 20 {
            let c = bytes[n]
            guard c >= 0x30 && c <= 0x39 else { break }
            value = value &* 10 &+ UInt64(c - 0x30)
            n += 1
        }
        return n > 0 ? value : nil
    }
}
