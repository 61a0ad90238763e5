// Finds complete HTTP/1.1 responses in a byte stream, sans I/O: the status code and where the
// response ends (Content-Length or chunked body). A publisher needs nothing more of an answer.

enum HTTPResponseScanner {
    /// One complete response at the start of the bytes.
    struct Response {
        let status: Int
        /// Bytes the whole response takes (head and body).
        let length: Int
    }

    /// Where a response head ends and how its body is framed.
    struct Head {
        let status: Int
        /// Offset of the first body byte.
        let bodyStart: Int
        /// Content-Length, or nil.
        let contentLength: Int?
        let chunked: Bool
    }

    /// The head at the start of `bytes`, nil until complete; status 0 when it is not HTTP.
    static func head(_ bytes: UnsafeRawBufferPointer) -> Head? {
        guard let end = bytes.firstOffset(of: "\r\n\r\n") else { return nil }
        var status = 0
        if end >= 12 && bytes.matches("HTTP/1.", at: 0) {
            for i in 9..<12 { status = status * 10 + Int(bytes[i]) - 48 }
        }
        var contentLength: Int?
        var chunked = false
        var lineStart = (bytes.firstOffset(of: "\r\n") ?? end) + 2
        while lineStart < end {
            let lineEnd = bytes.firstOffset(of: "\r\n", from: lineStart) ?? end
            if let colon = bytes.firstOffset(of: ":", from: lineStart), colon < lineEnd {
                var valueStart = colon + 1
                while valueStart < lineEnd && bytes[valueStart] == 0x20 { valueStart += 1 }
                if isName(bytes, lineStart, colon, "content-length") {
                    var n = 0
                    for i in valueStart..<lineEnd where bytes[i] >= 48 && bytes[i] <= 57 { n = n * 10 + Int(bytes[i]) - 48 }
                    contentLength = n
                } else if isName(bytes, lineStart, colon, "transfer-encoding") {
                    chunked = isName(bytes, valueStart, lineEnd, "chunked")
                }
            }
            lineStart = lineEnd + 2
        }
        return Head(status: status, bodyStart: end + 4, contentLength: contentLength, chunked: chunked)
    }

    /// The complete response at the start of `bytes`, or nil until all of it has arrived.
    static func response(_ bytes: UnsafeRawBufferPointer) -> Response? {
        guard let head = head(bytes) else { return nil }
        if head.chunked {
            var offset = head.bodyStart
            while true {
                guard let chunk = chunk(bytes, at: offset) else { return nil }
                offset = chunk.end
                if chunk.size == 0 {
                    // Trailers are not sent by the gateways measured: "0\r\n\r\n".
                    guard bytes.count >= offset + 2 else { return nil }
                    return Response(status: head.status, length: offset + 2)
                }
            }
        }
        let total = head.bodyStart + (head.contentLength ?? 0)
        return bytes.count >= total ? Response(status: head.status, length: total) : nil
    }

    /// One chunk of a chunked body at `offset`: its data range and where the next chunk starts
    /// (after the data's CRLF; for the last, zero-size chunk, right after its size line).
    struct Chunk {
        let size: Int
        let dataStart: Int
        let end: Int
    }

    static func chunk(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Chunk? {
        guard let lineEnd = bytes.firstOffset(of: "\r\n", from: offset) else { return nil }
        var size = 0
        for i in offset..<lineEnd {
            let c = bytes[i]
            let digit: Int
            switch c {
            case 48...57: digit = Int(c) - 48
            case 97...102: digit = Int(c) - 87
            case 65...70: digit = Int(c) - 55
            default: digit = -1
            }
            if digit < 0 { break }
            size = size * 16 + digit
        }
        let dataStart = lineEnd + 2
        if size == 0 { return Chunk(size: 0, dataStart: dataStart, end: dataStart) }
        guard bytes.count >= dataStart + size + 2 else { return nil }
        return Chunk(size: size, dataStart: dataStart, end: dataStart + size + 2)
    }

    /// Whether `bytes[from..<to]` is `name` (lower case), ignoring ASCII case.
    private static func isName(_ bytes: UnsafeRawBufferPointer, _ from: Int, _ to: Int, _ name: StaticString) -> Bool {
        guard to - from == name.utf8CodeUnitCount else { return false }
        let p = name.utf8Start
        for i in 0..<(to - from) {
            let c = bytes[from + i]
            if (c >= 65 && c <= 90 ? c + 32 : c) != p[i] { return false }
        }
        return true
    }
}
