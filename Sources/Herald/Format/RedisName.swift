// A channel, pattern or key name compared the way Redis compares it: byte for byte. Swift's
// String equality is canonical equivalence (`é` equals `e` + U+0301); Redis's is not, so any
// table Herald keys by a Redis name must use this.

/// A name that is equal to another only when their UTF-8 bytes are.
public struct RedisName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) { self.text = text }

    public static func == (a: RedisName, b: RedisName) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }

    /// Byte order, as Redis sorts.
    public static func < (a: RedisName, b: RedisName) -> Bool { a.text.utf8.lexicographicallyPrecedes(b.text.utf8) }

    public func hash(into hasher: inout Hasher) {
        var text = self.text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    public var description: String { text }
}
