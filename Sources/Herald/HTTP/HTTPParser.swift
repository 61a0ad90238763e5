// Incremental HTTP/1.x request parser: bytes in, requests out, no I/O (like hiredis's read.c).
// It enforces the header-block and body limits while bytes arrive, so an oversize request costs
// at most the limit in memory. RFC 9112 framing: Content-Length or chunked, never both.

/// Parses requests from a connection's inbound bytes. Confined to its connection.
public struct HTTPParser {
    /// Largest header block (request line + fields), bytes.
    public let maxHeaderBytes: Int
    /// Largest body, bytes (after de-chunking).
    public let maxBodyBytes: Int

    private enum State {
        /// Waiting for the end of the header block; `scanned` bytes already searched.
        case head(scanned: Int)
        /// Reading a Content-Length body.
        case body(HTTPRequest, remaining: Int)
        /// Reading a chunked body.
        case chunked(HTTPRequest, ChunkState)
    }

    private enum ChunkState {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailers
    }

    private var state = State.head(scanned: 0)

    // Constants of the grammar, built once (an array literal at a call site allocates per call).
    private static let blankLine: [UInt8] = [13, 10, 13, 10]
    private static let lineEnd: [UInt8] = [13, 10]
    /// Longest chunk-size line (size and extensions), bytes.
    private static let maxChunkLine = 1024

    public init(maxHeaderBytes: Int = 16 * 1024, maxBodyBytes: Int = 1 << 20) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// True while part of a request has arrived but not all of it.
    public func isMidRequest(_ buffer: ByteBuffer) -> Bool {
        if case .head = state { return !buffer.isEmpty }
        return true
    }

    /// True while the header block of the next request is incomplete.
    public var isReadingHead: Bool {
        if case .head = state { return true }
        return false
    }

    /// Consumes bytes from `buffer` and returns the next complete request, or nil when more
    /// bytes are needed. Throws an `HTTPError` (400, 413, 431, 501, 505) on bad input; after a
    /// throw the connection must be closed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(HTTPError) -> HTTPRequest? {
        while true {
            switch state {
            case .head(let scanned):
                let from = max(0, scanned - 3)
                guard let end = buffer.firstIndex(of: Self.blankLine, from: from) else {
                    if buffer.readableCount > maxHeaderBytes { throw .headersTooLarge(limit: maxHeaderBytes) }
                    state = .head(scanned: buffer.readableCount)
                    return nil
                }
                if end + 4 > maxHeaderBytes { throw .headersTooLarge(limit: maxHeaderBytes) }
                var request = try Self.parseHead(buffer.peek(0, end))
                buffer.skip(end + 4)
                let framing = try Self.bodyFraming(request)
                switch framing {
                case .none:
                    state = .head(scanned: 0)
                    return request
                case .length(let length):
                    if length > maxBodyBytes { throw .payloadTooLarge(limit: maxBodyBytes) }
                    if length == 0 {
                        state = .head(scanned: 0)
                        return request
                    }
                    request.body.reserveCapacity(length)
                    state = .body(request, remaining: length)
                case .chunked:
                    state = .chunked(request, .size)
                }
            case .body(var request, let remaining):
                let n = min(remaining, buffer.readableCount)
                if n == 0 { return nil }
                request.body.append(contentsOf: buffer.peek(0, n))
                buffer.skip(n)
                if n == remaining {
                    state = .head(scanned: 0)
                    return request
                }
                state = .body(request, remaining: remaining - n)
                return nil
            case .chunked(var request, let chunk):
                switch chunk {
                case .size:
                    // The same limit whether the line arrived whole or in pieces (without its
                    // CRLF yet, the last byte may be the CR: it does not count).
                    let lineEnd = buffer.firstIndex(of: Self.lineEnd)
                    if (lineEnd ?? buffer.readableCount - 1) > Self.maxChunkLine { throw .malformed("chunk size line too long") }
                    guard let lineEnd else { return nil }
                    let line = buffer.read(lineEnd + 2).dropLast(2)
                    // chunk-size [BWS ";" chunk-ext] (RFC 9112 §7.1.1): spaces may precede ";".
                    var sizeField = line.prefix { $0 != UInt8(ascii: ";") }
                    while let last = sizeField.last, last == 32 || last == 9 { sizeField = sizeField.dropLast() }
                    guard let size = Self.parseHex(sizeField) else { throw .malformed("bad chunk size") }
                    if request.body.count + size > maxBodyBytes { throw .payloadTooLarge(limit: maxBodyBytes) }
                    state = .chunked(request, size == 0 ? .trailers : .data(remaining: size))
                case .data(let remaining):
                    let n = min(remaining, buffer.readableCount)
                    if n == 0 { return nil }
                    request.body.append(contentsOf: buffer.peek(0, n))
                    buffer.skip(n)
                    state = .chunked(request, n == remaining ? .dataEnd : .data(remaining: remaining - n))
                case .dataEnd:
                    guard buffer.readableCount >= 2 else { return nil }
                    guard buffer[0] == 13 && buffer[1] == 10 else { throw .malformed("chunk data not followed by CRLF") }
                    buffer.skip(2)
                    state = .chunked(request, .size)
                case .trailers:
                    let lineEnd = buffer.firstIndex(of: Self.lineEnd)
                    if (lineEnd ?? buffer.readableCount - 1) > maxHeaderBytes { throw .headersTooLarge(limit: maxHeaderBytes) }
                    guard let lineEnd else { return nil }
                    buffer.skip(lineEnd + 2)
                    if lineEnd == 0 {
                        state = .head(scanned: 0)
                        return request
                    }
                }
            }
        }
    }

    private enum BodyFraming { case none, length(Int), chunked }

    private static func bodyFraming(_ request: HTTPRequest) throws(HTTPError) -> BodyFraming {
        // One pass over the fields; nothing is allocated unless Transfer-Encoding is present.
        var length: String?
        var encodings: [String] = []
        for field in request.headers {
            if field.name == "content-length" {
                // Repeated Content-Length fields must agree (RFC 9110 §8.6).
                if let earlier = length, earlier != field.value { throw .malformed("bad Content-Length") }
                length = field.value
            } else if field.name == "transfer-encoding" {
                encodings.append(field.value)
            }
        }
        if !encodings.isEmpty {
            // RFC 9112 §6.1: a request with both is a smuggling attempt; reject it.
            if length != nil { throw .malformed("both Transfer-Encoding and Content-Length") }
            // Codings are ASCII tokens; Unicode case folding would read "chun\u{212A}ed" (Kelvin
            // sign) as chunked where a proxy in front sees an unknown coding: smuggling.
            guard encodings.allSatisfy({ $0.utf8.allSatisfy { $0 < 128 } }) else { throw .malformed("non-ASCII Transfer-Encoding") }
            let codings = encodings.joined(separator: ",").split(separator: ",")
                .map { $0.trimmingCharacters(in: " ").lowercased() }
            guard codings == ["chunked"] else {
                throw .notImplemented("Transfer-Encoding \(codings.joined(separator: ", ")) is not supported; use chunked")
            }
            return .chunked
        }
        guard let length else { return .none }
        // At most 18 digits: no sign, no spaces, and no overflow.
        guard !length.isEmpty, length.utf8.count <= 18 else { throw .malformed("bad Content-Length") }
        var value = 0
        for byte in length.utf8 {
            guard byte >= 48 && byte <= 57 else { throw .malformed("bad Content-Length") }
            value = value * 10 + Int(byte - 48)
        }
        return .length(value)
    }

    private static func parseHex(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 15 else { return nil }
        var value = 0
        for byte in bytes {
            let digit: Int
            switch byte {
            case 48...57: digit = Int(byte) - 48
            case 65...70: digit = Int(byte) - 55
            case 97...102: digit = Int(byte) - 87
            default: return nil
            }
            value = value * 16 + digit
        }
        return value
    }

    /// tchar of RFC 9110 §5.6.2.
    private static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 48...57, 65...90, 97...122: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    private static let http11 = Array("HTTP/1.1".utf8)
    private static let http10 = Array("HTTP/1.0".utf8)

    /// Parses a header block (without its final blank line) in one pass over the bytes;
    /// allocates only the field list and the strings of the request.
    static func parseHead(_ head: ArraySlice<UInt8>) throws(HTTPError) -> HTTPRequest {
        let end = head.endIndex
        let requestLineEnd = head.firstIndex(of: 13) ?? end
        guard requestLineEnd > head.startIndex else { throw .malformed("empty request line") }
        // Exactly three parts separated by single spaces: method, target, version.
        guard let firstSpace = head[..<requestLineEnd].firstIndex(of: 32),
              let secondSpace = head[(firstSpace + 1)..<requestLineEnd].firstIndex(of: 32),
              !head[(secondSpace + 1)..<requestLineEnd].contains(32) else {
            throw .malformed("malformed request line")
        }
        let method = head[head.startIndex..<firstSpace]
        let target = head[(firstSpace + 1)..<secondSpace]
        let version = head[(secondSpace + 1)..<requestLineEnd]
        guard !method.isEmpty, method.allSatisfy(isTokenChar), !target.isEmpty else { throw .malformed("malformed request line") }
        guard target.allSatisfy({ $0 > 32 && $0 < 127 }) else { throw .malformed("malformed request target") }
        let minor: Int
        if version.elementsEqual(http11) {
            minor = 1
        } else if version.elementsEqual(http10) {
            minor = 0
        } else if version.count == 8, version.starts(with: http10.prefix(5)),
                  (48...57).contains(version[version.startIndex + 5]), version[version.startIndex + 6] == UInt8(ascii: "."),
                  (48...57).contains(version[version.startIndex + 7]) {
            throw .versionNotSupported
        } else {
            throw .malformed("malformed HTTP version")
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(8)
        var lineStart = requestLineEnd
        while lineStart < end {
            // `lineStart` is at a CR; the line proper starts after its LF and ends at the next CR.
            guard lineStart + 1 < end, head[lineStart + 1] == 10 else { throw .malformed("bare CR in header block") }
            let lineEnd = head[(lineStart + 1)..<end].firstIndex(of: 13) ?? end
            let line = head[(lineStart + 2)..<lineEnd]
            lineStart = lineEnd
            guard !line.contains(10) else { throw .malformed("bare LF in header block") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .malformed("header line without a colon") }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenChar) else { throw .malformed("malformed header name") }
            var value = line[(colon + 1)...]
            while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
            while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
            guard value.allSatisfy({ $0 >= 32 || $0 == 9 }), !value.contains(127) else {
                throw .malformed("control character in header value")
            }
            headers.append((lowercasedASCII(name), String(decoding: value, as: UTF8.self)))
        }
        return HTTPRequest(method: String(decoding: method, as: UTF8.self),
                           target: String(decoding: target, as: UTF8.self),
                           minorVersion: minor, headers: headers)
    }

    /// A token (ASCII only, checked by the caller) as a lowercase String, built in place.
    private static func lowercasedASCII(_ token: ArraySlice<UInt8>) -> String {
        String(unsafeUninitializedCapacity: token.count) { out in
            for (i, byte) in token.enumerated() { out[i] = byte >= 65 && byte <= 90 ? byte | 0x20 : byte }
            return token.count
        }
    }
}
