// A Redis name (channel, pattern, shard channel, stream key, group, consumer, queue) as Redis
// holds it: bytes. Made once where a request is read (the percent-decoder, the query parser,
// the ops JSON reader), carried as is through every table and grant check, and handed to
// hiredis without a detour through String. Compared byte for byte, as Redis compares: Swift's
// String equality is canonical equivalence (`é` equals `e` + U+0301), Redis's is not.

/// A name that is equal to another only when their bytes are. Names Herald accepts are UTF-8
/// (every wire it speaks carries them as text); `text` is for JSON and logs only.
public struct RedisName: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The name as Redis holds it.
    public let bytes: [UInt8]

    /// Bytes already known to be UTF-8 (decoded and checked by the caller).
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Bytes that may not be UTF-8: nil unless they are.
    public init?(validating bytes: [UInt8]) {
        guard UTF8Validation.isValid(bytes) else { return nil }
        self.bytes = bytes
    }

    /// The UTF-8 of `text`, exactly as it is stored (no normalization).
    public init(_ text: String) { bytes = Array(text.utf8) }

    public init(stringLiteral text: String) { self.init(text) }

    /// The name as text, for JSON answers and log lines.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public var isEmpty: Bool { bytes.isEmpty }

    /// Byte order, as Redis sorts.
    public static func < (a: RedisName, b: RedisName) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    public var description: String { text }
}

/// A command argument: text (a command word, a number) or a name's bytes.
public protocol RedisArgument {
    var argumentBytes: [UInt8] { get }
}

extension String: RedisArgument {
    public var argumentBytes: [UInt8] { Array(utf8) }
}

extension RedisName: RedisArgument {
    public var argumentBytes: [UInt8] { bytes }
}

extension Array where Element == [UInt8] {
    /// Command arguments from words and names (names go as their bytes).
    public static func command(_ parts: any RedisArgument...) -> [[UInt8]] { parts.map(\.argumentBytes) }
}

extension JSONValue {
    /// A JSON string as a Redis name (its UTF-8, as the client sent it).
    public var nameValue: RedisName? { stringValue.map { RedisName($0) } }
}

extension JSONWriter.ObjectWriter {
    /// A name as a JSON string, written from its bytes.
    public mutating func field(_ key: String, _ name: RedisName) { field(key, utf8: name.bytes) }

    /// Names as a JSON array of strings.
    public mutating func field(_ key: String, names: [RedisName]) {
        field(key, json: JSONWriter.array(names))
    }
}

extension JSONWriter {
    /// `["a","b"]` from names' bytes.
    static func array(_ names: [RedisName]) -> [UInt8] {
        var json = JSONWriter()
        json.raw("[")
        for (i, name) in names.enumerated() {
            if i > 0 { json.raw(",") }
            json.string(utf8: name.bytes)
        }
        json.raw("]")
        return json.bytes
    }
}
