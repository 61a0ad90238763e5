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

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ body: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(body.utf8))
    }

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
    public func serialize(keepAlive: Bool) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(128 + (omitBody ? 0 : body.count))
        out.append(contentsOf: Self.statusLinePrefix)
        Self.appendDecimal(status, to: &out)
        out.append(32)
        out.append(contentsOf: Self.reason(status).utf8)
        out.append(contentsOf: Self.crlf)
        for (name, value) in headers {
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        if status != 304 && status != 204 && status != 101 && !streaming {
            out.append(contentsOf: Self.contentLength)
            Self.appendDecimal(body.count, to: &out)
            out.append(contentsOf: Self.crlf)
        }
        if !keepAlive { out.append(contentsOf: "Connection: close\r\n".utf8) }
        out.append(contentsOf: "\r\n".utf8)
        if !omitBody { out.append(contentsOf: body) }
        return out
    }

    private static let statusLinePrefix = Array("HTTP/1.1 ".utf8)
    private static let contentLength = Array("Content-Length: ".utf8)
    private static let crlf: [UInt8] = [13, 10]

    /// Writes a non-negative number in decimal without building a String.
    static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value >= 10 { appendDecimal(value / 10, to: &out) }
        out.append(UInt8(48 + value % 10))
    }

    public static func reason(_ status: Int) -> String {
        switch status {
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
