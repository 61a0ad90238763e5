// An HTTP/1.1 response and its serialisation into one chunk of bytes.

/// A response to send: status, headers, body.
public struct HTTPResponse {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// For HEAD: send the headers (with the body's Content-Length) but not the body.
    public var omitBody = false
    /// An open-ended body (an event stream): no Content-Length, the connection carries it.
    public var streaming = false
    /// For a WebSocket upgrade (101): the client's acceptable permessage-deflate offer, if any.
    /// The connection agrees to it (adding Sec-WebSocket-Extensions) when `--compression` is on.
    public var deflateOffer: DeflateParameters?

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ body: String, headers: [(String, String)] = []) -> HTTPResponse {
        json(status, bytes: Array(body.utf8), headers: headers)
    }

    public static func json(_ status: Int, bytes: [UInt8], headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: headers.isEmpty ? jsonHeaders : jsonHeaders + headers, body: bytes)
    }

    private static let jsonHeaders = [("Content-Type", "application/json")]

    /// The one place an `HTTPError` becomes an answer: JSON body plus the headers it calls for.
    public static func error(_ error: HTTPError) -> HTTPResponse {
        let headers = error.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        var json = JSONWriter()
        json.object {
            $0.field("error", error.code)
            $0.field("message", error.message)
        }
        return .json(error.status, json.string, headers: headers)
    }

    /// Serialises the response. `keepAlive: false` adds `Connection: close`.
    public func serialize(keepAlive: Bool) -> [UInt8] { chunk(keepAlive: keepAlive).bytes }

    /// Serialises the response straight into one chunk, sized first and written once.
    /// `keepAlive: false` adds `Connection: close`; `corsOrigin` adds the CORS answer headers.
    public func chunk(keepAlive: Bool, corsOrigin: String? = nil) -> Chunk {
        let reason = Self.reason(status)
        let hasLength = status != 304 && status != 204 && status != 101 && !streaming
        var size = Self.statusLinePrefix.count + ByteWriter.decimalCount(status) + 1 + reason.utf8.count + 2
        for (name, value) in headers { size += name.utf8.count + 2 + value.utf8.count + 2 }
        if let corsOrigin { size += Self.allowOrigin.count + corsOrigin.utf8.count + 2 + Self.varyOrigin.count }
        if hasLength { size += Self.contentLength.count + ByteWriter.decimalCount(body.count) + 2 }
        if !keepAlive { size += Self.connectionClose.count }
        size += 2 + (omitBody ? 0 : body.count)
        return Chunk.make(count: size) { out in
            var w = ByteWriter(out)
            w.write(Self.statusLinePrefix)
            w.writeDecimal(status)
            w.write(32)
            w.write(reason.utf8)
            w.write(Self.crlf)
            for (name, value) in headers {
                w.write(name.utf8)
                w.write(Self.colonSpace)
                w.write(value.utf8)
                w.write(Self.crlf)
            }
            if let corsOrigin {
                w.write(Self.allowOrigin)
                w.write(corsOrigin.utf8)
                w.write(Self.crlf)
                w.write(Self.varyOrigin)
            }
            if hasLength {
                w.write(Self.contentLength)
                w.writeDecimal(body.count)
                w.write(Self.crlf)
            }
            if !keepAlive { w.write(Self.connectionClose) }
            w.write(Self.crlf)
            if !omitBody { w.write(body) }
            precondition(w.offset == size, "HTTPResponse.chunk sized \(size) but wrote \(w.offset)")
        }
    }

    /// The interim answer to `Expect: 100-continue` (RFC 9110 §15.2.1): go on, send the body.
    public static let continueHead = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    private static let statusLinePrefix = Array("HTTP/1.1 ".utf8)
    private static let contentLength = Array("Content-Length: ".utf8)
    private static let connectionClose = Array("Connection: close\r\n".utf8)
    private static let allowOrigin = Array("Access-Control-Allow-Origin: ".utf8)
    private static let varyOrigin = Array("Vary: Origin\r\n".utf8)
    private static let colonSpace = Array(": ".utf8)
    private static let crlf: [UInt8] = [13, 10]

    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 101: "Switching Protocols"
        case 200: "OK"
        case 204: "No Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 417: "Expectation Failed"
        case 426: "Upgrade Required"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}
