// permessage-deflate negotiation (RFC 7692 §7.1), sans I/O: reads a client's
// Sec-WebSocket-Extensions offers and picks the first one Herald can accept. Herald always
// answers with server_no_context_takeover, so each message it sends is compressed on its own
// and one compressed frame can go to every subscriber that agreed to the same window.

/// The permessage-deflate parameters Herald and one client agreed to.
public struct DeflateParameters: Equatable, Sendable {
    /// Window Herald compresses with, bits (9-15): the offer's server_max_window_bits, else 15.
    public var serverMaxWindowBits = 15
    /// Window the client compresses with, bits (9-15): at most its client_max_window_bits value.
    public var clientMaxWindowBits = 15
    /// The client resets its compressor after each message (client_no_context_takeover), so
    /// Herald needs no inflate state of the connection's own between messages.
    public var clientNoContextTakeover = false
    /// The offer named server_max_window_bits, which the answer must then name too (§7.1.2.1).
    var serverWindowOffered = false

    public init() {}

    public static let extensionName = "permessage-deflate"

    /// The Sec-WebSocket-Extensions value that accepts these parameters.
    public var responseValue: String {
        var value = Self.extensionName + "; server_no_context_takeover"
        if clientNoContextTakeover { value += "; client_no_context_takeover" }
        if serverWindowOffered { value += "; server_max_window_bits=\(serverMaxWindowBits)" }
        return value
    }

    /// The first acceptable permessage-deflate offer among `headerValues` (every
    /// Sec-WebSocket-Extensions field of the request, in order), or nil when there is none.
    /// An offer is declined (§7: the next one is tried) when it names a parameter twice, a
    /// parameter not defined for offers, or a bad value, or asks for an 8-bit server window,
    /// which zlib cannot produce for raw DEFLATE. A malformed header field offers nothing; it
    /// does not fail the handshake, since compression is optional for both sides.
    public static func negotiate(_ headerValues: [String]) -> DeflateParameters? {
        for value in headerValues {
            guard let offers = ExtensionList.parse(Array(value.utf8)) else { continue }
            for offer in offers where offer.name == extensionName {
                if let accepted = accept(offer.parameters) { return accepted }
            }
        }
        return nil
    }

    /// The parameters agreeing to one offer, or nil to decline it (RFC 7692 §7.1).
    static func accept(_ parameters: [(name: String, value: String?)]) -> DeflateParameters? {
        var agreed = DeflateParameters()
        var seen = Set<String>()
        for (name, value) in parameters {
            guard seen.insert(name).inserted else { return nil }
            switch name {
            case "server_no_context_takeover":
                // Herald answers with it whether asked or not (§7.1.1.1).
                guard value == nil else { return nil }
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                agreed.clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let value, let bits = windowBits(value), bits >= 9 else { return nil }
                agreed.serverMaxWindowBits = bits
                agreed.serverWindowOffered = true
            case "client_max_window_bits":
                // Without a value it only says the client understands the parameter; with one
                // the client will not use a larger window (§7.1.2.2). Inflating with a larger
                // window than the sender used is always safe, so 8 reads as 9 (zlib's least).
                if let value {
                    guard let bits = windowBits(value) else { return nil }
                    agreed.clientMaxWindowBits = max(bits, 9)
                }
            default:
                return nil
            }
        }
        return agreed
    }

    /// A window size in bits: 8 to 15 in decimal, without leading zeros (§7.1.2.1).
    private static func windowBits(_ text: String) -> Int? {
        guard text.utf8.count <= 2, text.first != "0", let bits = Int(text), (8...15).contains(bits) else { return nil }
        return bits
    }
}

/// The grammar of Sec-WebSocket-Extensions (RFC 6455 §9.1): a comma-separated list of
/// `token *( ";" token [ "=" ( token / quoted-string ) ] )`, with optional whitespace around
/// the separators. Names are compared case-insensitively, so they are lowercased here.
enum ExtensionList {
    struct Element: Equatable {
        var name: String
        var parameters: [(name: String, value: String?)]

        static func == (a: Element, b: Element) -> Bool {
            a.name == b.name && a.parameters.elementsEqual(b.parameters) { $0.name == $1.name && $0.value == $1.value }
        }
    }

    /// The list's elements, or nil when `bytes` does not follow the grammar.
    static func parse(_ bytes: [UInt8]) -> [Element]? {
        var reader = Reader(bytes: bytes)
        var elements: [Element] = []
        while true {
            reader.skipSpace()
            // Empty list elements are allowed by the list rule (RFC 9110 §5.6.1).
            if reader.take(UInt8(ascii: ",")) { continue }
            if reader.atEnd { break }
            guard let name = reader.token() else { return nil }
            var element = Element(name: name.lowercased(), parameters: [])
            reader.skipSpace()
            while reader.take(UInt8(ascii: ";")) {
                reader.skipSpace()
                guard let parameter = reader.token() else { return nil }
                reader.skipSpace()
                var value: String?
                if reader.take(UInt8(ascii: "=")) {
                    reader.skipSpace()
                    // A quoted value must still be a token once unquoted (RFC 6455 §9.1).
                    guard let text = reader.quotedString() ?? reader.token(), Reader.isToken(text) else { return nil }
                    value = text
                    reader.skipSpace()
                }
                element.parameters.append((parameter.lowercased(), value))
            }
            elements.append(element)
            if reader.atEnd { break }
            guard reader.take(UInt8(ascii: ",")) else { return nil }
        }
        return elements
    }

    /// A cursor over the header's bytes.
    struct Reader {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index >= bytes.count }

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 32 || bytes[index] == 9 { index += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// A token (RFC 9110 §5.6.2), or nil when none starts here.
        mutating func token() -> String? {
            let start = index
            while index < bytes.count, Self.isTokenByte(bytes[index]) { index += 1 }
            return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
        }

        /// A quoted string without its quotes and escapes, or nil when none starts here (or it
        /// does not end).
        mutating func quotedString() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            var i = index + 1
            var text: [UInt8] = []
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "\""):
                    index = i + 1
                    return String(decoding: text, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard i + 1 < bytes.count else { return nil }
                    text.append(bytes[i + 1])
                    i += 2
                default:
                    text.append(bytes[i])
                    i += 1
                }
            }
            return nil
        }

        static func isToken(_ text: String) -> Bool {
            !text.isEmpty && text.utf8.allSatisfy(isTokenByte)
        }

        /// tchar: visible ASCII except the delimiters `"(),/:;<=>?@[\]{}`.
        static func isTokenByte(_ byte: UInt8) -> Bool {
            guard byte > 32, byte < 127 else { return false }
            return !delimiters.contains(byte)
        }

        private static let delimiters = Array(#""(),/:;<=>?@[\]{}"#.utf8)
    }
}
