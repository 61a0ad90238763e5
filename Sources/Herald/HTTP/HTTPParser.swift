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
        /// In the trailer section; `seen` bytes of it consumed (capped like a header block).
        case trailers(seen: Int)
    }

    private var state = State.head(scanned: 0)

    /// True once the head of an HTTP/1.1 request with `Expect: 100-continue` is accepted and its
    /// body is still to come: the connection sends `100 Continue` (RFC 9110 §10.1.1) and calls
    /// `continueSent()`. Cleared when the request completes.
    public private(set) var wantsContinue = false

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

    /// The connection has sent `100 Continue` for the request being read.
    public mutating func continueSent() {
        wantsContinue = false
    }

    /// Consumes bytes from `buffer` and returns the next complete request, or nil when more
    /// bytes are needed. Throws an `HTTPError` (400, 413, 417, 431, 501, 505) on bad input; after
    /// a throw the connection must be closed.
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
                var (request, expectsContinue) = try Self.parseHead(buffer.peek(0, end))
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
                wantsContinue = expectsContinue
            case .body(var request, let remaining):
                let n = min(remaining, buffer.readableCount)
                if n == 0 { return nil }
                request.body.append(contentsOf: buffer.peek(0, n))
                buffer.skip(n)
                if n == remaining {
                    state = .head(scanned: 0)
                    wantsContinue = false
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
                    // chunk-size [chunk-ext] (RFC 9112 §7.1.1), every byte checked: a bare CR or LF
                    // in an extension would be a line end to a lenient proxy in front (smuggling).
                    let digits = line.prefix(while: Self.isHexDigit)
                    guard let size = Self.parseHex(digits) else { throw .malformed("bad chunk size") }
                    guard Self.isValidChunkExtension(line[digits.endIndex...]) else { throw .malformed("malformed chunk extension") }
                    if request.body.count + size > maxBodyBytes { throw .payloadTooLarge(limit: maxBodyBytes) }
                    state = .chunked(request, size == 0 ? .trailers(seen: 0) : .data(remaining: size))
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
                case .trailers(let seen):
                    // The whole trailer section is held to the header limit, not each line: it is
                    // read and dropped, but must not stream on without end.
                    let lineEnd = buffer.firstIndex(of: Self.lineEnd)
                    if seen + (lineEnd ?? buffer.readableCount - 1) > maxHeaderBytes { throw .headersTooLarge(limit: maxHeaderBytes) }
                    guard let lineEnd else { return nil }
                    if lineEnd == 0 {
                        buffer.skip(2)
                        state = .head(scanned: 0)
                        wantsContinue = false
                        return request
                    }
                    // trailer-section = *( field-line CRLF ) (RFC 9112 §7.1.2): checked as header
                    // lines are, then dropped (Herald uses no trailer field).
                    _ = try Self.fieldLine(buffer.peek(0, lineEnd))
                    buffer.skip(lineEnd + 2)
                    state = .chunked(request, .trailers(seen: seen + lineEnd + 2))
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
            // RFC 9112 §6.1: HTTP/1.0 has no Transfer-Encoding; its framing is faulty (a 1.0
            // proxy in front would read the body by Content-Length or to the end).
            if request.minorVersion == 0 { throw .malformed("Transfer-Encoding in an HTTP/1.0 request") }
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
    /// allocates only the field list and the strings of the request. Also says whether the
    /// request expects `100 Continue` (HTTP/1.1 with `Expect: 100-continue`).
    static func parseHead(_ head: ArraySlice<UInt8>) throws(HTTPError) -> (HTTPRequest, expectsContinue: Bool) {
        let end = head.endIndex
        let requestLineEnd = head.firstIndex(of: 13) ?? end
        guard requestLineEnd > head.startIndex else { throw .malformed("empty request line") }
        // Exactly three parts separated by single spaces: method, target, version.
        guard let firstSpace = head[..<requestLineEnd].firstIndex(of: 32),
            let secondSpace = head[(firstSpace + 1)..<requestLineEnd].firstIndex(of: 32),
            !head[(secondSpace + 1)..<requestLineEnd].contains(32)
        else {
            throw .malformed("malformed request line")
        }
        let method = head[head.startIndex..<firstSpace]
        let target = head[(firstSpace + 1)..<secondSpace]
        let version = head[(secondSpace + 1)..<requestLineEnd]
        guard !method.isEmpty, method.allSatisfy(isTokenChar), !target.isEmpty else { throw .malformed("malformed request line") }
        guard target.allSatisfy({ $0 > 32 && $0 < 127 }) else { throw .malformed("malformed request target") }
        // request-target forms (RFC 9112 §3.2): origin-form "/path?query" (nearly every request),
        // absolute-form "http://authority/path?query" (its authority stands for Host), and
        // asterisk-form "*" for OPTIONS. Authority-form is only for CONNECT, not served here.
        var authority: ArraySlice<UInt8>?
        if target.first != UInt8(ascii: "/") && !(target.elementsEqual(asterisk) && method.elementsEqual(options)) {
            authority = try absoluteFormAuthority(target)
        }
        let minor: Int
        if version.elementsEqual(http11) {
            minor = 1
        } else if version.elementsEqual(http10) {
            minor = 0
        } else if version.count == 8, version.starts(with: http10.prefix(5)),
            (48...57).contains(version[version.startIndex + 5]), version[version.startIndex + 6] == UInt8(ascii: "."),
            (48...57).contains(version[version.startIndex + 7])
        {
            throw .versionNotSupported
        } else {
            throw .malformed("malformed HTTP version")
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(8)
        // Fields whose count or value Herald checks, noted in this same pass (by name length
        // first, so other fields cost one integer compare).
        var hostIndex: Int?
        var sawOrigin = false
        var expectsContinue = false
        var lineStart = requestLineEnd
        while lineStart < end {
            // `lineStart` is at a CR; the line proper starts after its LF and ends at the next CR.
            guard lineStart + 1 < end, head[lineStart + 1] == 10 else { throw .malformed("bare CR in header block") }
            let lineEnd = head[(lineStart + 1)..<end].firstIndex(of: 13) ?? end
            let line = head[(lineStart + 2)..<lineEnd]
            lineStart = lineEnd
            guard !line.contains(10) else { throw .malformed("bare LF in header block") }
            let (name, value) = try fieldLine(line)
            let lowerName = lowercasedASCII(name)
            switch name.count {
            case 4 where lowerName == "host":
                // RFC 9112 §3.2: more than one Host, or one with an invalid value, is a 400.
                guard hostIndex == nil else { throw .malformed("more than one Host header") }
                guard value.allSatisfy(isHostChar) else { throw .malformed("malformed Host header") }
                hostIndex = headers.count
            case 6 where lowerName == "origin":
                // Two Origins would let the CORS check and an Origin allow-list read different
                // ones; a browser sends one (RFC 6454 §7.3), so two are refused as ambiguous.
                guard !sawOrigin else { throw .malformed("more than one Origin header") }
                sawOrigin = true
            case 6 where lowerName == "expect" && minor == 1:
                // RFC 9110 §10.1.1: 100-continue is the only expectation; an HTTP/1.0 request's
                // Expect is ignored.
                if try isContinueExpectation(value) { expectsContinue = true }
            default:
                break
            }
            headers.append((lowerName, String(decoding: value, as: UTF8.self)))
        }
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (HTTP/1.0 had no Host).
        if minor == 1 && hostIndex == nil { throw .malformed("an HTTP/1.1 request needs a Host header") }
        // RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host.
        if let authority, let hostIndex { headers[hostIndex].value = String(decoding: authority, as: UTF8.self) }
        return (
            HTTPRequest(
                method: String(decoding: method, as: UTF8.self),
                target: String(decoding: target, as: UTF8.self),
                minorVersion: minor, headers: headers), expectsContinue
        )
    }

    /// One field line (RFC 9112 §5, also a trailer line): a token name, ":", and the value
    /// without surrounding spaces and tabs, holding no control character but HTAB (so no bare
    /// CR or LF either).
    @inline(__always)
    private static func fieldLine(_ line: ArraySlice<UInt8>) throws(HTTPError) -> (name: ArraySlice<UInt8>, value: ArraySlice<UInt8>) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .malformed("header line without a colon") }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty, name.allSatisfy(isTokenChar) else { throw .malformed("malformed header name") }
        var value = line[(colon + 1)...]
        while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
        while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
        guard value.allSatisfy({ $0 >= 32 || $0 == 9 }), !value.contains(127) else {
            throw .malformed("control character in header value")
        }
        return (name, value)
    }

    private static let asterisk = Array("*".utf8)
    private static let options = Array("OPTIONS".utf8)
    private static let continueToken = Array("100-continue".utf8)

    /// The authority of an absolute-form target `http[s]://authority[/path][?query]`
    /// (RFC 9112 §3.2.2); any other target that is not origin-form is a 400.
    private static func absoluteFormAuthority(_ target: ArraySlice<UInt8>) throws(HTTPError) -> ArraySlice<UInt8> {
        guard let colon = target.firstIndex(of: UInt8(ascii: ":")) else { throw .malformed("malformed request target") }
        let scheme = target[target.startIndex..<colon].map { $0 | 0x20 }
        let rest = target[(colon + 1)...]
        guard scheme.elementsEqual("http".utf8) || scheme.elementsEqual("https".utf8), rest.starts(with: "//".utf8) else {
            throw .malformed("malformed request target")
        }
        let afterSlashes = rest.dropFirst(2)
        let authority = afterSlashes.prefix { $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") }
        // A userinfo ("user@host") is deprecated and refused (RFC 9110 §4.2.4); `@` is no host byte.
        guard !authority.isEmpty, authority.allSatisfy(isHostChar) else { throw .malformed("malformed request target") }
        return authority
    }

    /// Bytes of `uri-host [":" port]` (RFC 3986 §3.2.2): reg-name (unreserved, sub-delims,
    /// pct-encoded), IPv4, or an IP literal in brackets. No spaces, `/`, `?`, `#` or `@`.
    private static func isHostChar(_ c: UInt8) -> Bool {
        switch c {
        case 48...58, 65...90, 97...122: return true  // digits, ":", letters
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "%"),
            UInt8(ascii: "!"), UInt8(ascii: "$"), UInt8(ascii: "&"), UInt8(ascii: "'"), UInt8(ascii: "("),
            UInt8(ascii: ")"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: ";"),
            UInt8(ascii: "="), UInt8(ascii: "["), UInt8(ascii: "]"):
            return true
        default: return false
        }
    }

    /// Whether an Expect value asks for 100-continue; any other expectation is a 417
    /// (RFC 9110 §10.1.1). Empty list members are skipped.
    private static func isContinueExpectation(_ value: ArraySlice<UInt8>) throws(HTTPError) -> Bool {
        var found = false
        for member in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
            var item = member[...]
            while let first = item.first, first == 32 || first == 9 { item = item.dropFirst() }
            while let last = item.last, last == 32 || last == 9 { item = item.dropLast() }
            if item.isEmpty { continue }
            guard item.count == continueToken.count, zip(item, continueToken).allSatisfy({ $0 | 0x20 == $1 }) else {
                throw .expectationFailed(String(decoding: item, as: UTF8.self))
            }
            found = true
        }
        return found
    }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (48...57).contains(c) || (65...70).contains(c) || (97...102).contains(c)
    }

    /// Whether the bytes after a chunk size are a valid `chunk-ext` (RFC 9112 §7.1.1):
    /// `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, name a token, value a token or a
    /// quoted-string. Extensions are then ignored, as the RFC allows.
    private static func isValidChunkExtension(_ bytes: ArraySlice<UInt8>) -> Bool {
        var i = bytes.startIndex
        let end = bytes.endIndex
        func skipWhitespace() { while i < end && (bytes[i] == 32 || bytes[i] == 9) { i += 1 } }
        func skipToken() -> Bool {
            let start = i
            while i < end && isTokenChar(bytes[i]) { i += 1 }
            return i > start
        }
        while i < end {
            skipWhitespace()
            guard i < end, bytes[i] == UInt8(ascii: ";") else { return false }
            i += 1
            skipWhitespace()
            guard skipToken() else { return false }
            let afterName = i
            skipWhitespace()
            guard i < end, bytes[i] == UInt8(ascii: "=") else {
                i = afterName
                continue
            }
            i += 1
            skipWhitespace()
            if i < end && bytes[i] == UInt8(ascii: "\"") {
                guard skipQuotedString(bytes, &i) else { return false }
            } else {
                guard skipToken() else { return false }
            }
        }
        return true
    }

    /// Moves `i` past a quoted-string (RFC 9110 §5.6.4) starting at `i`; false if it is not one.
    private static func skipQuotedString(_ bytes: ArraySlice<UInt8>, _ i: inout Int) -> Bool {
        i += 1  // the opening quote
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                return true
            }
            if c == UInt8(ascii: "\\") {
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                i += 1
                guard i < bytes.endIndex, bytes[i] == 9 || (bytes[i] >= 32 && bytes[i] != 127) else { return false }
            } else {
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                guard c == 9 || (c >= 32 && c != 127) else { return false }
            }
            i += 1
        }
        return false
    }

    /// A token (ASCII only, checked by the caller) as a lowercase String, built in place.
    private static func lowercasedASCII(_ token: ArraySlice<UInt8>) -> String {
        String(unsafeUninitializedCapacity: token.count) { out in
            for (i, byte) in token.enumerated() { out[i] = byte >= 65 && byte <= 90 ? byte | 0x20 : byte }
            return token.count
        }
    }
}
