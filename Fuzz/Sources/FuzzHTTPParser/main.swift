// Fuzz target: the HTTP/1.x request parser (HTTPParser) as a connection drives it.
//
// The input is the byte stream a client sends (one or more pipelined requests). It is parsed
// three ways: all at once, cut into pseudo-random pieces (the cuts depend only on the input),
// and, for short inputs, one byte at a time; `ByteBuffer.reclaim()` runs after every piece as
// in ClientConnection. Each way must give the same requests and the same refusal: how TCP cuts
// the bytes must never change what Herald understood. Every parsed request then goes through
// what the router does with it (path, query decoding, keep-alive, WebSocket handshake), and
// every refusal through the error response, whose head must stay free of injected lines.
import FuzzSupport
import Herald

struct ParsedRequest: Equatable {
    var method: String
    var target: String
    var minorVersion: Int
    var headers: [String]
    var body: [UInt8]

    init(_ r: HTTPRequest) {
        method = r.method
        target = r.target
        minorVersion = r.minorVersion
        headers = r.headers.map { $0.name + ":" + $0.value }
        body = r.body
    }
}

struct Refusal: Equatable {
    var status: Int
    var code: String
    var closesConnection: Bool
}

struct Outcome: Equatable {
    var requests: [ParsedRequest] = []
    var refusal: Refusal?
    /// Unconsumed bytes and parser state once every byte arrived (only when not refused).
    var leftover = 0
    var midRequest = false
    var readingHead = true
}

func parse(_ pieces: [ArraySlice<UInt8>], maxHeader: Int, maxBody: Int, check: Bool) -> Outcome {
    var parser = HTTPParser(maxHeaderBytes: maxHeader, maxBodyBytes: maxBody)
    var buffer = ByteBuffer()
    var outcome = Outcome()
    for piece in pieces {
        buffer.append(Array(piece))
        do {
            while let request = try parser.next(&buffer) {
                if check { exercise(request, maxBody: maxBody) }
                outcome.requests.append(ParsedRequest(request))
            }
        } catch {
            if check { exercise(error) }
            outcome.refusal = Refusal(status: error.status, code: error.code, closesConnection: error.closesConnection)
            return outcome
        }
        buffer.reclaim()
    }
    outcome.leftover = buffer.readableCount
    outcome.midRequest = parser.isMidRequest(buffer)
    outcome.readingHead = parser.isReadingHead
    return outcome
}

/// What the router and the WebSocket upgrade do with a parsed request, plus its invariants.
func exercise(_ request: HTTPRequest, maxBody: Int) {
    invariant(request.body.count <= maxBody, "body of \(request.body.count) bytes above the limit \(maxBody)")
    invariant(!request.method.isEmpty, "empty method")
    invariant(request.minorVersion == 0 || request.minorVersion == 1, "HTTP/1.\(request.minorVersion)")
    invariant(
        !request.target.isEmpty && !request.target.utf8.contains(where: { $0 <= 32 || $0 >= 127 }),
        "target with a space, control or non-ASCII byte: \(describe(Array(request.target.utf8)))")
    for (name, value) in request.headers {
        invariant(!name.isEmpty && name == name.lowercased(), "header name not lowercased: \(name)")
        invariant(
            !value.utf8.contains(where: { $0 == 10 || $0 == 13 || $0 == 0 }),
            "CR, LF or NUL in a header value: \(describe(Array(value.utf8)))")
    }
    // RFC 9112 §3.2: Host once in HTTP/1.1, at most once in 1.0; Origin at most once (Herald's rule).
    let hosts = request.headers.filter { $0.name == "host" }.count
    invariant(hosts == 1 || (request.minorVersion == 0 && hosts == 0), "\(hosts) Host fields in HTTP/1.\(request.minorVersion)")
    invariant(request.headers.filter { $0.name == "origin" }.count <= 1, "two Origin fields accepted")
    // RFC 9112 §6.1: no Transfer-Encoding in HTTP/1.0.
    invariant(request.minorVersion == 1 || request.header("transfer-encoding") == nil, "HTTP/1.0 with Transfer-Encoding accepted")
    // Every accepted target routes by an origin-form path (absolute-form gives its own), or is OPTIONS *.
    invariant(
        request.path.utf8.first == UInt8(ascii: "/") || (request.target == "*" && request.method == "OPTIONS"),
        "target \(request.target) routes by path \(request.path)")
    _ = request.path
    if let items = PercentDecoding.query(request.query) {
        for item in items {
            // Values are kept as bytes, and are UTF-8 (a name in one reaches Redis as sent).
            invariant(UTF8Validation.isValid(item.bytes), "query value is UTF-8")
            _ = (item.name.count, item.redisName)
        }
    }
    _ = PercentDecoding.decode(request.path)
    _ = PercentDecoding.decodeName(Substring(request.path))
    _ = request.keepAlive
    if WebSocketHandshake.isUpgrade(request) || request.header("sec-websocket-key") != nil {
        do {
            let response = try WebSocketHandshake.accept(request)
            checkHead(response.serialize(keepAlive: true), status: 101)
            // A permessage-deflate answer reads back as an acceptable offer with the same windows.
            if let agreed = response.deflateOffer {
                invariant((9...15).contains(agreed.serverMaxWindowBits) && (9...15).contains(agreed.clientMaxWindowBits), "window bits out of range")
                let again = DeflateParameters.negotiate([agreed.responseValue])
                invariant(again?.serverMaxWindowBits == agreed.serverMaxWindowBits, "answer \(agreed.responseValue) does not read back")
                invariant(again?.clientNoContextTakeover == agreed.clientNoContextTakeover, "answer \(agreed.responseValue) does not read back")
            }
        } catch {
            exercise(error)
        }
    }
    // A wrong method on a known path: the method (attacker text) goes into the answer.
    exercise(HTTPError.methodNotAllowed(request.method, allowed: ["GET", "HEAD"]))
}

/// An error answer must be a well-formed response with a JSON body naming the error.
func exercise(_ error: HTTPError) {
    var response = HTTPResponse.error(error)
    let bytes = response.serialize(keepAlive: !error.closesConnection)
    let body = checkHead(bytes, status: error.status)
    invariant(body == response.body, "Content-Length framing does not match the body")
    do {
        let json = try JSONValue.parse(body)
        invariant(json["error"]?.stringValue == error.code, "error body names \(String(describing: json["error"]))")
        invariant(json["message"]?.stringValue == error.message, "error message does not round-trip")
    } catch {
        invariant(false, "error body is not JSON: \(error): \(describe(body))")
    }
    response.omitBody = true
    _ = response.serialize(keepAlive: false)
}

/// Checks the head of a serialised response (status line, header lines without stray CR/LF,
/// a Content-Length that matches) and returns the body.
@discardableResult
func checkHead(_ bytes: [UInt8], status: Int) -> [UInt8] {
    guard let end = firstIndex(of: [13, 10, 13, 10], in: bytes) else {
        invariant(false, "response without an end of head: \(describe(bytes))")
        return []
    }
    let head = Array(bytes[..<end])
    let lines = split(head, by: [13, 10])
    invariant(
        lines.first.map { String(decoding: $0, as: UTF8.self).hasPrefix("HTTP/1.1 \(status) ") } ?? false,
        "bad status line in \(describe(head))")
    var contentLength: Int?
    for line in lines {
        invariant(!line.contains(10) && !line.contains(13), "stray CR or LF in a response head line: \(describe(line))")
        let text = String(decoding: line, as: UTF8.self)
        if text.lowercased().hasPrefix("content-length:") {
            invariant(contentLength == nil, "two Content-Length headers")
            contentLength = Int(text.dropFirst("content-length:".count).trimmingPrefix(" "))
        }
    }
    let body = Array(bytes[(end + 4)...])
    if status != 101 { invariant(contentLength == body.count, "Content-Length \(String(describing: contentLength)) for \(body.count) bytes") }
    return body
}

func firstIndex(of pattern: [UInt8], in bytes: [UInt8]) -> Int? {
    guard bytes.count >= pattern.count else { return nil }
    for i in 0...(bytes.count - pattern.count) where bytes[i..<i + pattern.count].elementsEqual(pattern) { return i }
    return nil
}

func split(_ bytes: [UInt8], by separator: [UInt8]) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var start = 0
    var i = 0
    while i + separator.count <= bytes.count {
        if bytes[i..<i + separator.count].elementsEqual(separator) {
            out.append(Array(bytes[start..<i]))
            i += separator.count
            start = i
        } else {
            i += 1
        }
    }
    out.append(Array(bytes[start...]))
    return out
}

func describe(_ o: Outcome) -> String {
    "\(o.requests.count) requests \(o.requests.map { "\($0.method) \($0.target) body \($0.body.count)" }), "
        + "refusal \(String(describing: o.refusal)), leftover \(o.leftover), mid \(o.midRequest), head \(o.readingHead)"
}

runFuzzer { data, size in
    let input = bytes(data, size)
    var random = InputRandom(input)
    let maxHeader = [1024, 4096, 16 * 1024][random.below(3)]
    let maxBody = [0, 16, 1024, 1 << 20][random.below(4)]

    let whole = parse([input[...]], maxHeader: maxHeader, maxBody: maxBody, check: true)
    let maxPiece = [1, 2, 3, 7, 64, 1500][random.below(6)]
    let cut = parse(random.pieces(input, maxPiece: maxPiece), maxHeader: maxHeader, maxBody: maxBody, check: false)
    invariant(
        whole == cut,
        """
        whole and cut (pieces of up to \(maxPiece) bytes) parses disagree; limits header \(maxHeader) body \(maxBody)
          whole: \(describe(whole))
          cut:   \(describe(cut))
        """)
    // Byte-by-byte delivery too for short inputs (the cut above is sometimes 1-byte pieces).
    if input.count <= 256 {
        let trickle = parse(input.indices.map { input[$0...$0] }, maxHeader: maxHeader, maxBody: maxBody, check: false)
        invariant(
            whole == trickle,
            """
            whole and byte-by-byte parses disagree; limits header \(maxHeader) body \(maxBody)
              whole:   \(describe(whole))
              trickle: \(describe(trickle))
            """)
    }
    return 0
}
