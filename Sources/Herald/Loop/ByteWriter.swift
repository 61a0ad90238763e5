// Writing into memory sized in advance (a `Chunk` being filled): a cursor, no bounds growth.

/// Appends bytes at a cursor in a buffer the caller sized exactly; confined to one call.
public struct ByteWriter {
    private let out: UnsafeMutableRawBufferPointer
    public private(set) var offset = 0

    public init(_ out: UnsafeMutableRawBufferPointer) { self.out = out }

    public mutating func write(_ byte: UInt8) {
        precondition(offset < out.count, "ByteWriter: write past the end")
        out[offset] = byte
        offset += 1
    }

    public mutating func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    public mutating func write(_ text: String.UTF8View) {
        let copied: Void? = text.withContiguousStorageIfAvailable { source in
            write(UnsafeRawBufferPointer(source))
        }
        if copied == nil { for byte in text { write(byte) } }
    }

    public mutating func write(_ source: UnsafeRawBufferPointer) {
        guard let from = source.baseAddress, !source.isEmpty else { return }
        precondition(offset + source.count <= out.count, "ByteWriter: write past the end")
        (out.baseAddress! + offset).copyMemory(from: from, byteCount: source.count)
        offset += source.count
    }

    /// Digits of a non-negative number in decimal (to size a buffer before `writeDecimal`).
    public static func decimalCount(_ value: Int) -> Int {
        var digits = 1
        var rest = value
        while rest >= 10 { rest /= 10; digits += 1 }
        return digits
    }

    /// A non-negative number in decimal.
    public mutating func writeDecimal(_ value: Int) {
        let digits = Self.decimalCount(value)
        precondition(offset + digits <= out.count, "ByteWriter: write past the end")
        var rest = value
        for i in stride(from: offset + digits - 1, through: offset, by: -1) {
            out[i] = UInt8(48 + rest % 10)
            rest /= 10
        }
        offset += digits
    }
}
