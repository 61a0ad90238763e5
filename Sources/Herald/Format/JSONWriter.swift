// A small, allocation-light JSON writer for the envelopes Herald sends on every delivery; it
// writes straight into a byte array instead of building a dictionary and serialising it.

/// Appends JSON text to a byte array.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func object(_ body: (inout ObjectWriter) -> Void) {
        var writer = ObjectWriter(json: self)
        bytes = []
        writer.json.bytes.append(UInt8(ascii: "{"))
        body(&writer)
        writer.json.bytes.append(UInt8(ascii: "}"))
        self = writer.json
    }

    /// Writes `bytes` (valid UTF-8) as a quoted, escaped JSON string.
    public mutating func string<C: Collection>(utf8 value: C) where C.Element == UInt8 {
        bytes.append(UInt8(ascii: "\""))
        for byte in value {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case 10: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 13: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 9: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0..<32, 127:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    public mutating func string(_ value: String) { string(utf8: value.utf8) }

    public mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }
    public mutating func raw(_ text: [UInt8]) { bytes.append(contentsOf: text) }

    /// Writes the fields of one JSON object, with commas between them.
    public struct ObjectWriter {
        fileprivate(set) var json: JSONWriter
        private var first = true

        fileprivate init(json: JSONWriter) { self.json = json }

        private mutating func key(_ name: String) {
            if !first { json.bytes.append(UInt8(ascii: ",")) }
            first = false
            json.string(name)
            json.bytes.append(UInt8(ascii: ":"))
        }

        public mutating func field(_ name: String, _ value: String) {
            key(name)
            json.string(value)
        }

        public mutating func field<C: Collection>(_ name: String, utf8 value: C) where C.Element == UInt8 {
            key(name)
            json.string(utf8: value)
        }

        public mutating func field(_ name: String, _ value: Int) {
            key(name)
            json.raw(String(value))
        }

        public mutating func field(_ name: String, _ value: Bool) {
            key(name)
            json.raw(value ? "true" : "false")
        }

        public mutating func field(_ name: String, strings: [String]) {
            key(name)
            json.bytes.append(UInt8(ascii: "["))
            for (i, s) in strings.enumerated() {
                if i > 0 { json.bytes.append(UInt8(ascii: ",")) }
                json.string(s)
            }
            json.bytes.append(UInt8(ascii: "]"))
        }

        /// A field whose value is already JSON text.
        public mutating func field(_ name: String, json text: [UInt8]) {
            key(name)
            json.raw(text)
        }

        public mutating func field(_ name: String, objects: [(inout ObjectWriter) -> Void]) {
            key(name)
            json.bytes.append(UInt8(ascii: "["))
            for (i, body) in objects.enumerated() {
                if i > 0 { json.bytes.append(UInt8(ascii: ",")) }
                var inner = ObjectWriter(json: json)
                json.bytes = []
                inner.json.bytes.append(UInt8(ascii: "{"))
                body(&inner)
                inner.json.bytes.append(UInt8(ascii: "}"))
                json = inner.json
            }
            json.bytes.append(UInt8(ascii: "]"))
        }
    }
}
