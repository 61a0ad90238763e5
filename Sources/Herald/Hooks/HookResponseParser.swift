// The backend's answer to a hook call, parsed as it arrives (sans I/O: bytes in, a response or
// a reason out). Only what a hook answer needs: the status, `Content-Length`, chunked bodies
// and `Connection: close`. Everything is capped, as the backend is trusted to decide, not to
// be well-behaved: a header block over 16 KiB or a body over the cap ends the call.

/// One HTTP/1.1 response read from a hook connection.
struct HookResponse: Equatable {
    let status: Int
    let body: [UInt8]
    /// The backend will close the connection after this response.
    let closes: Bool
}

/// Parses one response at a time from bytes fed in any pieces.
struct HookResponseParser {
    enum Outcome: Equatable {
        case needMore
        case response(HookResponse)
        case invalid(String)
    }

    /// Largest status line plus headers.
    static let maxHead = 16 * 1024

    let maxBody: Int
    private var buffer: [UInt8] = []
    private var head: (status: Int, closes: Bool, length: Int?, chunked: Bool)?
    /// Where the body starts in `buffer`, once the head is parsed.
    private var bodyStart = 0

    init(maxBody: Int) { self.maxBody = maxBody }

    /// Adds `bytes` and returns what they complete.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        buffer.append(contentsOf: bytes)
        return parse()
    }

    mutating func feed(_ bytes: [UInt8]) -> Outcome { bytes.withUnsafeBytes { feed($0) } }

    /// The peer closed: a body that runs to the close ends here.
    mutating func finish() -> Outcome {
        guard let head, head.length == nil, !head.chunked else { return .invalid("the backend closed the connection mid-answer") }
        let body = Array(buffer[bodyStart...])
        reset()
        return .response(HookResponse(status: head.status, body: body, closes: true))
    }

    private mutating func reset() {
        buffer = []
        head = nil
        bodyStart = 0
    }

    private mutating func parse() -> Outcome {
        if head == nil {
            guard let end = Self.headEnd(buffer) else {
                return buffer.count > Self.maxHead ? .invalid("the answer's header block is over \(Self.maxHead) bytes") : .needMore
            }
            guard end <= Self.maxHead else { return .invalid("the answer's header block is over \(Self.maxHead) bytes") }
            switch Self.parseHead(buffer[..<end]) {
            case .success(let parsed):
                head = parsed
                bodyStart = end + 4
            case .failure(let reason):
                return .invalid(reason.description)
            }
        }
        guard let head else { return .needMore }
        if head.chunked { return dechunk(head) }
        if let length = head.length {
            guard length <= maxBody else { return .invalid("the answer's body is over \(maxBody) bytes") }
            guard buffer.count - bodyStart >= length else { return .needMore }
            guard buffer.count - bodyStart == length else { return .invalid("the backend sent more than its answer") }
            let body = Array(buffer[bodyStart..<(bodyStart + length)])
            reset()
            return .response(HookResponse(status: head.status, body: body, closes: head.closes))
        }
        // No length and not chunked: the body runs to the close.
        return buffer.count - bodyStart > maxBody ? .invalid("the answer's body is over \(maxBody) bytes") : .needMore
    }

    /// Decodes a chunked body once all of it is in (RFC 9112 §7.1), extensions and trailers
    /// skipped.
    private mutating func dechunk(_ head: (status: Int, closes: Bool, length: Int?, chunked: Bool)) -> Outcome {
        var body: [UInt8] = []
        var at = bodyStart
        while true {
            guard let lineEnd = Self.lineEnd(buffer, from: at) else { return needMoreUnlessTooLarge(body.count) }
            let sizeText = buffer[at..<lineEnd].prefix { $0 != UInt8(ascii: ";") }
            guard !sizeText.isEmpty, sizeText.count <= 8, let size = Int(String(decoding: sizeText, as: UTF8.self).trimmingWhitespace(), radix: 16), size >= 0
            else { return .invalid("a malformed chunk size") }
            at = lineEnd + 2
            if size == 0 {
                // Trailers up to the empty line.
                while true {
                    guard let end = Self.lineEnd(buffer, from: at) else { return needMoreUnlessTooLarge(body.count) }
                    let empty = end == at
                    at = end + 2
                    if empty { break }
                }
                guard at == buffer.count else { return .invalid("the backend sent more than its answer") }
                reset()
                return .response(HookResponse(status: head.status, body: body, closes: head.closes))
            }
            guard body.count + size <= maxBody else { return .invalid("the answer's body is over \(maxBody) bytes") }
            guard buffer.count >= at + size + 2 else { return .needMore }
            body += buffer[at..<(at + size)]
            guard buffer[at + size] == UInt8(ascii: "\r"), buffer[at + size + 1] == UInt8(ascii: "\n") else {
                return .invalid("a chunk not ended by CRLF")
            }
            at += size + 2
        }
    }

    private func needMoreUnlessTooLarge(_ decoded: Int) -> Outcome {
        buffer.count - bodyStart > maxBody + Self.maxHead ? .invalid("the answer's body is over \(maxBody) bytes") : .needMore
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4)
        where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    private static func lineEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= start + 2 else { return nil }
        for i in start...(bytes.count - 2) where bytes[i] == 13 && bytes[i + 1] == 10 { return i }
        return nil
    }

    private static func parseHead(_ head: ArraySlice<UInt8>) -> Result<(status: Int, closes: Bool, length: Int?, chunked: Bool), HookFailure> {
        let lines = head.split(separator: 10, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
        }
        let statusLine = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard statusLine.count >= 2, statusLine[0] == "HTTP/1.1" || statusLine[0] == "HTTP/1.0",
            statusLine[1].count == 3, let status = Int(statusLine[1]), (100...599).contains(status)
        else { return .failure(HookFailure("not an HTTP/1.x status line")) }
        guard status >= 200 else { return .failure(HookFailure("an interim \(status) answer")) }
        var closes = statusLine[0] == "HTTP/1.0"
        var length: Int?
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return .failure(HookFailure("a header line without a colon")) }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...]).trimmingWhitespace()
            switch name {
            case "content-length":
                guard let n = Int(value), n >= 0, length == nil || length == n else { return .failure(HookFailure("a bad Content-Length")) }
                length = n
            case "transfer-encoding":
                guard value.lowercased() == "chunked" else { return .failure(HookFailure("an unsupported Transfer-Encoding")) }
                chunked = true
            case "connection":
                let tokens = value.lowercased().split(separator: ",").map { String($0).trimmingWhitespace() }
                if tokens.contains("close") { closes = true }
                if tokens.contains("keep-alive") { closes = false }
            default: break
            }
        }
        if chunked { length = nil }
        // 204 and 304 have no body whatever the headers say.
        if status == 204 || status == 304 { return .success((status, closes, 0, false)) }
        return .success((status, closes, length, chunked))
    }
}

/// Why a hook call failed, in words for the log.
struct HookFailure: Error, Equatable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
