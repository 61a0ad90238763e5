// HTTPParser: framing (none, Content-Length, chunked), pipelining, arrival in any pieces,
// limits and every error status it can raise.
import Herald
import HeraldTestSupport
import XCTest

/// An `HTTPRequest` reduced to values that compare with `==`.
struct ParsedRequest: Equatable, CustomStringConvertible {
    var method: String
    var target: String
    var minorVersion: Int
    var headers: [String]
    var body: [UInt8]

    init(_ request: HTTPRequest) {
        method = request.method
        target = request.target
        minorVersion = request.minorVersion
        headers = request.headers.map { "\($0.name): \($0.value)" }
        body = request.body
    }

    init(_ method: String, _ target: String, minorVersion: Int = 1, headers: [String], body: String = "") {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = Array(body.utf8)
    }

    var description: String {
        "\(method) \(target) 1.\(minorVersion) \(headers) body=\(String(decoding: body, as: UTF8.self).debugDescription)"
    }
}

final class HTTPParserTests: XCTestCase {
    // MARK: helpers

    /// Feeds `pieces` one after another, calling `next` until it returns nil after each, as a
    /// connection does; returns every request and what is left unread.
    private func parse(_ pieces: [[UInt8]], _ parser: HTTPParser = HTTPParser()) throws(HTTPError) -> (requests: [ParsedRequest], leftover: Int) {
        var parser = parser
        var buffer = ByteBuffer()
        var requests: [ParsedRequest] = []
        for piece in pieces {
            buffer.append(piece)
            while let request = try parser.next(&buffer) {
                requests.append(ParsedRequest(request))
            }
            buffer.reclaim()
        }
        return (requests, buffer.readableCount)
    }

    private func parse(_ text: String, _ parser: HTTPParser = HTTPParser()) throws(HTTPError) -> [ParsedRequest] {
        try parse([Array(text.utf8)], parser).requests
    }

    /// The error parsing `bytes` raises, whole and byte by byte (both must agree), or nil.
    private func error(_ bytes: [UInt8], _ parser: HTTPParser = HTTPParser(),
                       file: StaticString = #filePath, line: UInt = #line) -> HTTPError? {
        var whole: HTTPError?
        do throws(HTTPError) { _ = try parse([bytes], parser) } catch { whole = error }
        var trickled: HTTPError?
        do throws(HTTPError) { _ = try parse(bytes.map { [$0] }, parser) } catch { trickled = error }
        XCTAssertEqual(whole?.status, trickled?.status, "whole and byte-by-byte parses disagree", file: file, line: line)
        return whole
    }

    private func error(_ text: String, _ parser: HTTPParser = HTTPParser(),
                       file: StaticString = #filePath, line: UInt = #line) -> HTTPError? {
        error(Array(text.utf8), parser, file: file, line: line)
    }

    private let get = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    private let post = "POST /publish/news HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
    private let chunked = "POST /publish HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "5;name=value\r\nhello\r\n6;flag\r\n world\r\nA\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"
    private let close = "GET /healthz HTTP/1.0\r\nConnection: close\r\n\r\n"

    // MARK: framing

    /// Fuzzing found these: a long chunk-size line or trailer line was refused when it arrived in
    /// pieces but accepted when it arrived whole. The limit must not depend on packet borders.
    func testLongChunkLinesAreRefusedWholeAndInPieces() {
        let head = "POST /publish HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        let longExtension = head + "5;" + String(repeating: "x", count: 1100) + "\r\nhello\r\n0\r\n\r\n"
        XCTAssertEqual(error(longExtension)?.status, 400)
        let small = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 1024)
        let longTrailer = head + "5\r\nhello\r\n0\r\nX-T: " + String(repeating: "v", count: 1100) + "\r\n\r\n"
        XCTAssertEqual(error(longTrailer, small)?.status, 431)
    }

    func testSimpleGet() throws {
        XCTAssertEqual(try parse(get), [ParsedRequest("GET", "/index.html?x=1", headers: ["host: example.com", "accept: */*"])])
    }

    func testHeaderNamesAreLowercasedAndValuesTrimmed() throws {
        let requests = try parse("GET / HTTP/1.1\r\nX-Padded:  \t spaced value \t\r\nEMPTY:\r\n\r\n")
        XCTAssertEqual(requests.first?.headers, ["x-padded: spaced value", "empty: "])
    }

    func testPostWithContentLengthBody() throws {
        XCTAssertEqual(try parse(post), [ParsedRequest("POST", "/publish/news", headers: ["host: h", "content-length: 11"], body: "hello world")])
    }

    func testContentLengthZeroCompletesWithoutBody() throws {
        let result = try parse([Array("POST /p HTTP/1.1\r\nContent-Length: 0\r\n\r\n".utf8)])
        XCTAssertEqual(result.requests.map(\.body), [[]])
        XCTAssertEqual(result.leftover, 0)
    }

    func testBodyIsNotReturnedUntilComplete() throws {
        var parser = HTTPParser()
        var buffer = ByteBuffer(Array("POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel".utf8))
        XCTAssertNil(try parser.next(&buffer))
        XCTAssertTrue(parser.isMidRequest(buffer))
        XCTAssertFalse(parser.isReadingHead)
        buffer.append(Array("lo".utf8))
        XCTAssertEqual(try parser.next(&buffer).map { ParsedRequest($0).body }, Array("hello".utf8))
        XCTAssertTrue(parser.isReadingHead)
        XCTAssertFalse(parser.isMidRequest(buffer))
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let result = try parse([Array(chunked.utf8)])
        XCTAssertEqual(result.requests, [ParsedRequest("POST", "/publish", headers: ["host: h", "transfer-encoding: chunked"],
                                                       body: "hello world0123456789abcdefghij")])
        XCTAssertEqual(result.leftover, 0, "the trailer section must be consumed")
    }

    func testChunkedCodingIsCaseInsensitive() throws {
        let requests = try parse("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        XCTAssertEqual(requests.map(\.body), [Array("abc".utf8)])
    }

    func testPipelinedRequestsInOneBuffer() throws {
        let result = try parse([Array((get + post + chunked + close).utf8)])
        XCTAssertEqual(result.requests.map(\.method), ["GET", "POST", "POST", "GET"])
        XCTAssertEqual(result.requests.map(\.target), ["/index.html?x=1", "/publish/news", "/publish", "/healthz"])
        XCTAssertEqual(result.requests[1].body, Array("hello world".utf8))
        XCTAssertEqual(result.requests[2].body, Array("hello world0123456789abcdefghij".utf8))
        XCTAssertEqual(result.requests[3].minorVersion, 0)
        XCTAssertEqual(result.leftover, 0)
    }

    func testPartialNextRequestStaysInTheBuffer() throws {
        let result = try parse([Array((get + "GET /second HT").utf8)])
        XCTAssertEqual(result.requests.count, 1)
        XCTAssertEqual(result.leftover, "GET /second HT".utf8.count)
    }

    /// However TCP cuts the stream, the parser sees the same requests.
    func testEverySplitOffsetGivesTheUnsplitParse() throws {
        let stream = Array((get + post + chunked + close).utf8)
        let expected = try parse([stream]).requests
        XCTAssertEqual(expected.count, 4)
        for pieces in ByteSplits.all(stream) {
            let result = try parse(pieces)
            XCTAssertEqual(result.requests, expected, "split into \(pieces.map(\.count))")
            XCTAssertEqual(result.leftover, 0)
        }
    }

    func testEachRequestAloneSplitAtEveryOffset() throws {
        for text in [get, post, chunked, close] {
            let bytes = Array(text.utf8)
            let expected = try parse([bytes]).requests
            XCTAssertEqual(expected.count, 1)
            for pieces in ByteSplits.all(bytes) {
                XCTAssertEqual(try parse(pieces).requests, expected, "\(text.debugDescription) split into \(pieces.map(\.count))")
            }
        }
    }

    // MARK: limits

    func testHeaderBlockAboveLimitIs431() {
        let parser = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 1024)
        let big = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 1100) + "\r\n\r\n"
        XCTAssertEqual(error(big, parser)?.status, 431)
        XCTAssertEqual(error(big, parser)?.code, "headers_too_large")
        XCTAssertEqual(error(big, parser)?.closesConnection, true)
    }

    func testUnterminatedHeaderBlockAboveLimitIs431BeforeItEnds() {
        var parser = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 1024)
        var buffer = ByteBuffer(Array(("GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 2000)).utf8))
        XCTAssertThrowsError(try parser.next(&buffer)) { XCTAssertEqual(($0 as? HTTPError)?.status, 431) }
    }

    func testHeaderBlockExactlyAtLimitIsAccepted() throws {
        let prefix = "GET / HTTP/1.1\r\nX-Fill: "
        let fill = String(repeating: "b", count: 1024 - prefix.utf8.count - 4)
        let text = prefix + fill + "\r\n\r\n"
        XCTAssertEqual(text.utf8.count, 1024)
        let parser = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 1024)
        XCTAssertEqual(try parse(text, parser).count, 1)
        XCTAssertEqual(error("GET / HTTP/1.1\r\nX-Fill: b" + fill + "\r\n\r\n", parser)?.status, 431)
    }

    func testContentLengthAboveMaxBodyIs413BeforeTheBodyArrives() {
        let parser = HTTPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 100)
        XCTAssertEqual(error("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", parser)?.status, 413)
        XCTAssertEqual(error("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", parser)?.code, "payload_too_large")
        XCTAssertNil(error("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + String(repeating: "x", count: 100), parser))
    }

    func testChunkedBodyGrowingAboveMaxIs413() {
        let parser = HTTPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 100)
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        let sixty = "3c\r\n" + String(repeating: "x", count: 60) + "\r\n"
        XCTAssertEqual(error(head + sixty + sixty + "0\r\n\r\n", parser)?.status, 413)
        XCTAssertEqual(error(head + "FFFFFFFFFFFFFFF\r\n", parser)?.status, 413)
        XCTAssertNil(error(head + sixty + "28\r\n" + String(repeating: "y", count: 40) + "\r\n0\r\n\r\n", parser))
    }

    // MARK: errors

    func testMalformedRequestLinesAre400() {
        for line in ["GET /\r\n", "GET  / HTTP/1.1\r\n", "GET / HTTP/1.1 extra\r\n", "G(T / HTTP/1.1\r\n",
                     "GET /a\u{7F}b HTTP/1.1\r\n", "\r\n", "GET / HTTX/1.1\r\n", "GET / http/1.1\r\n", "GET / HTTP/1.10\r\n"] {
            let e = error(line + "Host: h\r\n\r\n")
            XCTAssertEqual(e?.status, 400, line.debugDescription)
            XCTAssertEqual(e?.code, "bad_request", line.debugDescription)
            XCTAssertEqual(e?.closesConnection, true, line.debugDescription)
        }
    }

    func testBadHeaderLinesAre400() {
        for header in ["Host : h", " Host: h", "Host h", ": empty-name", "Bad\u{1}Name: v", "X-Ctl: a\u{1}b",
                       "X-Del: a\u{7F}b", "X-LF: a\nb"] {
            XCTAssertEqual(error("GET / HTTP/1.1\r\n" + header + "\r\n\r\n")?.status, 400, header.debugDescription)
        }
    }

    func testContentLengthWithTransferEncodingIs400() {
        for head in ["Content-Length: 3\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 3"] {
            XCTAssertEqual(error("POST / HTTP/1.1\r\n" + head + "\r\n\r\n3\r\nabc\r\n0\r\n\r\n")?.status, 400)
        }
    }

    func testBadContentLengthIs400() {
        for value in ["-1", "abc", "1 2", "+5", "", "12345678901234567890"] {
            XCTAssertEqual(error("POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\n")?.status, 400, value)
        }
        XCTAssertEqual(error("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")?.status, 400)
    }

    func testRepeatedEqualContentLengthsAreAccepted() throws {
        XCTAssertEqual(try parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc").map(\.body), [Array("abc".utf8)])
    }

    func testTransferEncodingOtherThanChunkedIs501() {
        for coding in ["gzip", "gzip, chunked", "chunked, chunked", "identity"] {
            let e = error("POST / HTTP/1.1\r\nTransfer-Encoding: \(coding)\r\n\r\n")
            XCTAssertEqual(e?.status, 501, coding)
            XCTAssertEqual(e?.code, "not_implemented", coding)
        }
    }

    /// "chun\u{212A}ed" (KELVIN SIGN) lowercases to "chunked" by Unicode rules; a proxy in front
    /// would not take it for chunked, so Herald must not either (request smuggling).
    func testNonASCIITransferEncodingIs400() {
        let e = error("POST / HTTP/1.1\r\nTransfer-Encoding: chun\u{212A}ed\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        XCTAssertEqual(e?.status, 400)
    }

    func testOtherHTTPVersionsAre505() {
        for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0"] {
            let e = error("GET / \(version)\r\nHost: h\r\n\r\n")
            XCTAssertEqual(e?.status, 505, version)
            XCTAssertEqual(e?.code, "http_version_not_supported", version)
        }
    }

    func testBadChunkSizeIs400() {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        for body in ["xyz\r\n", "\r\n", "-5\r\nhello\r\n", "5\r\nhelloXX0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n",
                     "1000000000000000\r\n"] {
            XCTAssertEqual(error(head + body)?.status, 400, body.debugDescription)
        }
    }

    func testOverlongChunkSizeLineIs400() {
        let head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        XCTAssertEqual(error(head + "5;" + String(repeating: "e", count: 1100))?.status, 400)
    }

    func testRequestTargetKeepsItsQueryAndPercentEscapes() throws {
        let request = try XCTUnwrap(try parse("GET /publish/a%20b?sharded=true&x=%2F HTTP/1.1\r\n\r\n").first)
        XCTAssertEqual(request.target, "/publish/a%20b?sharded=true&x=%2F")
    }
}
