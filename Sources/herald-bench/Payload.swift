// A publish's payload: its send time (monotonic ns) in decimal, padded with `x` to the
// requested size, so it is URL-safe (Webdis takes it in the path) and valid UTF-8 (Herald sends
// it as a text frame, inside a JSON string without escaping).

enum Payload {
    /// Appends the payload for a publish sent at `sentAt` to `out`: the send time, then `x`
    /// padding, or with `json` a space and JSON text (cut to size).
    static func append(sentAt: UInt64, size: Int, json: Bool = false, into out: inout [UInt8]) {
        var digits: (UInt64, Int) = (sentAt, 0)
        var scratch = [UInt8](repeating: 0, count: 20)
        repeat {
            scratch[19 - digits.1] = UInt8(ascii: "0") + UInt8(digits.0 % 10)
            digits.0 /= 10
            digits.1 += 1
        } while digits.0 > 0
        out.append(contentsOf: scratch[(20 - digits.1)...])
        guard size > digits.1 else { return }
        if json {
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: jsonText.prefix(size - digits.1 - 1))
        } else {
            out.append(contentsOf: repeatElement(UInt8(ascii: "x"), count: size - digits.1))
        }
    }

    /// JSON like an app's state update (orders with ids, names, prices and timestamps from a
    /// fixed pseudo-random sequence), 64 KB of it, so any `--size` up to that is cut from it.
    static let jsonText: [UInt8] = {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ n: UInt64) -> UInt64 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (seed >> 33) % n
        }
        let products = ["espresso", "flat white", "croissant", "bagel", "matcha latte", "orange juice", "muffin", "tea"]
        let statuses = ["pending", "paid", "preparing", "ready", "delivered"]
        var text = #"{"type":"orders","shop":"north-12","orders":["#
        var first = true
        while text.utf8.count < 65_536 {
            if !first { text += "," }
            first = false
            text += #"{"id":\#(100_000 + next(900_000)),"customer":"c-\#(next(100_000))","#
            text += #""item":"\#(products[Int(next(8))])","qty":\#(1 + next(4)),"price":\#(next(2000) + 150),"#
            text += #""status":"\#(statuses[Int(next(5))])","at":"2026-12-07T\#(10 + next(10)):\#(10 + next(50)):\#(10 + next(50))Z"}"#
        }
        return Array(text.utf8)
    }()

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
