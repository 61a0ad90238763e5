// Shared plumbing for Herald's fuzz targets: running libFuzzer, failing loudly on a broken
// invariant (libFuzzer saves the input and prints the stack), and a deterministic PRNG for
// choices that must not depend on anything but the input (such as where TCP cuts the bytes).
import CFuzzDriver
import Glibc

/// Hands control to libFuzzer with `callback` as the fuzz target; never returns.
/// `callback` gets (bytes, count) and must return 0.
public func runFuzzer(_ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    HeraldFuzzSetCallback(callback)
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
}

/// The input as an array (empty for a nil pointer).
public func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// A broken invariant: prints `message` and traps, so libFuzzer reports a crash with the stack
/// and writes the input to the artifact prefix (Fuzz/crashes/).
public func invariant(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() {
        let text = "INVARIANT BROKEN at \(file):\(line): \(message())\n"
        var bytes = Array(text.utf8)
        _ = write(2, &bytes, bytes.count)
        fatalError(text)
    }
}

/// SplitMix64 seeded from the input's FNV-1a hash: the same input always gets the same choices.
public struct InputRandom {
    private var state: UInt64

    public init(_ bytes: [UInt8], salt: UInt64 = 0) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ salt
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        state = h
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<bound (bound > 0).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// Cuts `bytes` into pieces of 1...maxPiece bytes.
    public mutating func pieces(_ bytes: [UInt8], maxPiece: Int) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var i = 0
        while i < bytes.count {
            let n = min(bytes.count - i, 1 + below(maxPiece))
            out.append(bytes[i..<i + n])
            i += n
        }
        return out
    }
}

/// Text for messages: printable ASCII kept, everything else as \xNN.
public func describe<C: Collection>(_ bytes: C, limit: Int = 200) -> String where C.Element == UInt8 {
    var s = ""
    for b in bytes.prefix(limit) {
        if b >= 32 && b < 127 && b != UInt8(ascii: "\\") {
            s.unicodeScalars.append(Unicode.Scalar(b))
        } else {
            let hex = Array("0123456789abcdef")
            s += "\\x" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
        }
    }
    return bytes.count > limit ? s + "…(\(bytes.count) bytes)" : s
}

extension String {
    /// The text without leading and trailing whitespace: the fuzz targets' own oracle for what
    /// Herald's config and auth code trim.
    public func trimmingWhitespaceForFuzz() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
