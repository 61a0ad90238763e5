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
    private func error(
        _ bytes: [UInt8], _ parser: HTTPParser = HTTPParser(),
        file: StaticString = #filePath, line: UInt = #line
    ) -> HTTPError? {
        var whole: HTTPError?
        do throws(HTTPError) { _ = try parse([bytes], parser) } catch { whole = error }
        var trickled: HTTPError?
        do throws(HTTPError) { _ = try parse(bytes.map { [$0] }, parser) } catch { trickled = error }
        XCTAssertEqual(whole?.status, trickled?.status, "whole and byte-by-byte parses disagree", file: file, line: line)
        return whole
    }

    private func error(
        _ text: String, _ parser: HTTPParser = HTTPParser(),
        file: StaticString = #filePath, line: UInt = #line
    ) -> HTTPError? {
        error(Array(text.utf8), parser, file: file, line: line)
    }

    private let get = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    private let post = "POST /publish/news HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
    private let chunked =
        "POST /publish HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
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
        let requests = try parse("GET / HTTP/1.1\r\nHost: h\r\nX-Padded:  \t spaced value \t\r\nEMPTY:\r\n\r\n")
        XCTAssertEqual(requests.first?.headers, ["host: h", "x-padded: spaced value", "empty: "])
    }

    func testPostWithContentLengthBody() throws {
        XCTAssertEqual(try parse(post), [ParsedRequest("POST", "/publish/news", headers: ["host: h", "content-length: 11"], body: "hello world")])
    }

    func testContentLengthZeroCompletesWithoutBody() throws {
        let result = try parse([Array("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n".utf8)])
        XCTAssertEqual(result.requests.map(\.body), [[]])
        XCTAssertEqual(result.leftover, 0)
    }

    func testBodyIsNotReturnedUntilComplete() throws {
        var parser = HTTPParser()
        var buffer = ByteBuffer(Array("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel".utf8))
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
        XCTAssertEqual(
            result.requests,
            [
                ParsedRequest(
                    "POST", "/publish", headers: ["host: h", "transfer-encoding: chunked"],
                    body: "hello world0123456789abcdefghij")
            ])
        XCTAssertEqual(result.leftover, 0, "the trailer section must be consumed")
    }

    func testChunkedCodingIsCaseInsensitive() throws {
        let requests = try parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
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
        let big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + String(repeating: "a", count: 1100) + "\r\n\r\n"
        XCTAssertEqual(error(big, parser)?.status, 431)
        XCTAssertEqual(error(big, parser)?.code, "headers_too_large")
        XCTAssertEqual(error(big, parser)?.closesConnection, true)
    }

    func testUnterminatedHeaderBlockAboveLimitIs431BeforeItEnds() {
        var parser = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 1024)
        var buffer = ByteBuffer(Array(("GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + String(repeating: "a", count: 2000)).utf8))
        XCTAssertThrowsError(try parser.next(&buffer)) { XCTAssertEqual(($0 as? HTTPError)?.status, 431) }
    }

    func testHeaderBlockExactlyAtLimitIsAccepted() throws {
        let prefix = "GET / HTTP/1.1\r\nHost: h\r\nX-Fill: "
        let fill = String(repeating: "b", count: 1024 - prefix.utf8.count - 4)
        let text = prefix + fill + "\r\n\r\n"
        XCTAssertEqual(text.utf8.count, 1024)
        let parser = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 1024)
        XCTAssertEqual(try parse(text, parser).count, 1)
        XCTAssertEqual(error("GET / HTTP/1.1\r\nHost: h\r\nX-Fill: b" + fill + "\r\n\r\n", parser)?.status, 431)
    }

    func testContentLengthAboveMaxBodyIs413BeforeTheBodyArrives() {
        let parser = HTTPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 100)
        XCTAssertEqual(error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", parser)?.status, 413)
        XCTAssertEqual(error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", parser)?.code, "payload_too_large")
        XCTAssertNil(error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + String(repeating: "x", count: 100), parser))
    }

    func testChunkedBodyGrowingAboveMaxIs413() {
        let parser = HTTPParser(maxHeaderBytes: 16 * 1024, maxBodyBytes: 100)
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        let sixty = "3c\r\n" + String(repeating: "x", count: 60) + "\r\n"
        XCTAssertEqual(error(head + sixty + sixty + "0\r\n\r\n", parser)?.status, 413)
        XCTAssertEqual(error(head + "FFFFFFFFFFFFFFF\r\n", parser)?.status, 413)
        XCTAssertNil(error(head + sixty + "28\r\n" + String(repeating: "y", count: 40) + "\r\n0\r\n\r\n", parser))
    }

    // MARK: errors

    func testMalformedRequestLinesAre400() {
        for line in [
            "GET /\r\n", "GET  / HTTP/1.1\r\n", "GET / HTTP/1.1 extra\r\n", "G(T / HTTP/1.1\r\n",
            "GET /a\u{7F}b HTTP/1.1\r\n", "\r\n", "GET / HTTX/1.1\r\n", "GET / http/1.1\r\n", "GET / HTTP/1.10\r\n",
        ] {
            let e = error(line + "Host: h\r\n\r\n")
            XCTAssertEqual(e?.status, 400, line.debugDescription)
            XCTAssertEqual(e?.code, "bad_request", line.debugDescription)
            XCTAssertEqual(e?.closesConnection, true, line.debugDescription)
        }
    }

    func testBadHeaderLinesAre400() {
        for header in [
            "Host : h", " Host: h", "Host h", ": empty-name", "Bad\u{1}Name: v", "X-Ctl: a\u{1}b",
            "X-Del: a\u{7F}b", "X-LF: a\nb",
        ] {
            XCTAssertEqual(error("GET / HTTP/1.1\r\nHost: h\r\n" + header + "\r\n\r\n")?.status, 400, header.debugDescription)
        }
    }

    func testContentLengthWithTransferEncodingIs400() {
        for head in ["Content-Length: 3\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 3"] {
            XCTAssertEqual(error("POST / HTTP/1.1\r\nHost: h\r\n" + head + "\r\n\r\n3\r\nabc\r\n0\r\n\r\n")?.status, 400)
        }
    }

    func testBadContentLengthIs400() {
        for value in ["-1", "abc", "1 2", "+5", "", "12345678901234567890"] {
            XCTAssertEqual(error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \(value)\r\n\r\n")?.status, 400, value)
        }
        XCTAssertEqual(error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")?.status, 400)
    }

    func testRepeatedEqualContentLengthsAreAccepted() throws {
        XCTAssertEqual(try parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc").map(\.body), [Array("abc".utf8)])
    }

    func testTransferEncodingOtherThanChunkedIs501() {
        for coding in ["gzip", "gzip, chunked", "chunked, chunked", "identity"] {
            let e = error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \(coding)\r\n\r\n")
            XCTAssertEqual(e?.status, 501, coding)
            XCTAssertEqual(e?.code, "not_implemented", coding)
        }
    }

    /// "chun\u{212A}ed" (KELVIN SIGN) lowercases to "chunked" by Unicode rules; a proxy in front
    /// would not take it for chunked, so Herald must not either (request smuggling).
    func testNonASCIITransferEncodingIs400() {
        let e = error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chun\u{212A}ed\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
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
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        for body in [
            "xyz\r\n", "\r\n", "-5\r\nhello\r\n", "5\r\nhelloXX0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n",
            "1000000000000000\r\n",
        ] {
            XCTAssertEqual(error(head + body)?.status, 400, body.debugDescription)
        }
    }

    func testOverlongChunkSizeLineIs400() {
        let head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        XCTAssertEqual(error(head + "5;" + String(repeating: "e", count: 1100))?.status, 400)
    }

    func testRequestTargetKeepsItsQueryAndPercentEscapes() throws {
        let request = try XCTUnwrap(try parse("GET /publish/a%20b?sharded=true&x=%2F HTTP/1.1\r\nHost: h\r\n\r\n").first)
        XCTAssertEqual(request.target, "/publish/a%20b?sharded=true&x=%2F")
    }

    // MARK: hostile-client review (issue 11)

    /// The status of parsing `text` at every split offset (and byte by byte); all must agree.
    private func statusAtEverySplit(
        _ text: String, _ parser: HTTPParser = HTTPParser(),
        file: StaticString = #filePath, line: UInt = #line
    ) -> Int? {
        let bytes = Array(text.utf8)
        var statuses: Set<Int?> = []
        for pieces in ByteSplits.all(bytes) {
            do throws(HTTPError) { _ = try parse(pieces, parser); statuses.insert(nil) } catch { statuses.insert(error.status) }
        }
        XCTAssertEqual(statuses.count, 1, "split parses disagree: \(statuses)", file: file, line: line)
        return statuses.first ?? nil
    }

    private let chunkedHead = "POST /publish HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

    /// RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), value a token
    /// or a quoted-string. Well-formed extensions are accepted (and ignored) however TCP cuts them.
    func testWellFormedChunkExtensionsAreAcceptedAtEverySplit() throws {
        let text = chunkedHead + "3 ; a = b ;flag\r\nabc\r\n2;q=\"x \\\" ;\\\\ \u{80}y\"\r\nde\r\n1;n=\"\"\r\nf\r\n0;last=1\r\n\r\n"
        let bytes = Array(text.utf8)
        XCTAssertEqual(try parse([bytes]).requests.map(\.body), [Array("abcdef".utf8)])
        for pieces in ByteSplits.all(bytes) {
            let result = try parse(pieces)
            XCTAssertEqual(result.requests.map(\.body), [Array("abcdef".utf8)], "split into \(pieces.map(\.count))")
            XCTAssertEqual(result.leftover, 0)
        }
    }

    /// A bare LF or CR (a line end to a lenient proxy in front: request smuggling), or any
    /// byte outside the grammar, in a chunk extension is a 400, wherever the bytes are cut.
    func testMalformedChunkExtensionsAre400AtEverySplit() {
        for line in [
            "5;a\nb", "5;a\rb", "5;a=b\nX", "5;", "5;=v", "5;a=", "5;a=\"open", "5;a=b c", "5 ", "5\t",
            "5;a ", "5;a=b;", "5;a b", "5;a=\"x\u{1}\"", "5;a=\"x\" y", "5;a\u{0}", "5;a=\u{7F}", "5x",
        ] {
            let text = chunkedHead + line + "\r\nhello\r\n0\r\n\r\n"
            XCTAssertEqual(statusAtEverySplit(text), 400, line.debugDescription)
            XCTAssertEqual(error(text)?.closesConnection, true, line.debugDescription)
        }
    }

    /// RFC 9112 §7.1.2: trailer fields have the syntax of header fields; a bare LF or CR, a
    /// folded line or a bad name is a 400, wherever the bytes are cut.
    func testMalformedTrailerLinesAre400AtEverySplit() {
        for trailer in [
            "X-T: a\nb", "X-T: a\rb", "X\nT: v", "X T: v", " folded", "\tfolded", "NoColon", "X-T: a\u{1}b",
            "X-T: \u{7F}", ": v", "X-T: ok\r\n more",
        ] {
            let text = chunkedHead + "5\r\nhello\r\n0\r\n" + trailer + "\r\n\r\n"
            XCTAssertEqual(statusAtEverySplit(text), 400, trailer.debugDescription)
        }
        XCTAssertNil(statusAtEverySplit(chunkedHead + "5\r\nhello\r\n0\r\nX-T: a \t b\r\nY:\r\n\r\n"))
    }

    /// Trailer lines are dropped, but the section as a whole is held to the header limit: many
    /// short lines must not stream on without end.
    func testTrailerSectionAboveHeaderLimitIs431() {
        let parser = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 1024)
        let trailers = String(repeating: "X-T: 0123456789\r\n", count: 100)
        XCTAssertEqual(error(chunkedHead + "5\r\nhello\r\n0\r\n" + trailers + "\r\n", parser)?.status, 431)
        let fewer = String(repeating: "X-T: 0123456789\r\n", count: 50)
        XCTAssertNil(error(chunkedHead + "5\r\nhello\r\n0\r\n" + fewer + "\r\n", parser))
    }

    /// RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with two, or with an
    /// invalid Host value, is a 400. HTTP/1.0 had no Host and needs none.
    func testHostIsRequiredOnceInHTTP11() throws {
        XCTAssertEqual(statusAtEverySplit("GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n"), 400)
        XCTAssertEqual(error("GET /healthz HTTP/1.1\r\n\r\n")?.closesConnection, true)
        XCTAssertEqual(statusAtEverySplit("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400)
        XCTAssertEqual(error("GET /healthz HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n")?.status, 400)
        XCTAssertEqual(error("GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n")?.status, 400)
        for bad in ["a b", "a/b", "user@h", "h?x", "h#f", "h\\x", "h\"", "h<"] {
            XCTAssertEqual(error("GET / HTTP/1.1\r\nHost: \(bad)\r\n\r\n")?.status, 400, bad)
        }
        for good in ["", "localhost", "localhost:8080", "127.0.0.1:1", "[::1]:8080", "xn--bcher-kva.example", "a_b.c~d"] {
            XCTAssertEqual(try parse("GET / HTTP/1.1\r\nHost: \(good)\r\n\r\n").count, 1, good)
        }
        XCTAssertEqual(try parse("GET /healthz HTTP/1.0\r\n\r\n").count, 1)
    }

    /// Two Origin fields are ambiguous (a browser sends one, RFC 6454 §7.3): the CORS answer and
    /// the origin allow-list must not be able to read different ones.
    func testTwoOriginHeadersAre400() {
        XCTAssertEqual(statusAtEverySplit("GET / HTTP/1.1\r\nHost: h\r\nOrigin: https://a\r\norigin: https://b\r\n\r\n"), 400)
        XCTAssertEqual(error("GET / HTTP/1.1\r\nHost: h\r\nOrigin: https://a\r\nOrigin: https://a\r\n\r\n")?.status, 400)
        XCTAssertNil(error("GET / HTTP/1.1\r\nHost: h\r\nOrigin: https://a\r\n\r\n"))
    }

    /// RFC 9112 §3.2.2: an absolute-form target is accepted; path and query come from it and its
    /// authority takes the place of Host.
    func testAbsoluteFormTargetGivesPathQueryAndHost() throws {
        let text = "GET http://example.com:8080/publish/a%20b?x=1&y=2 HTTP/1.1\r\nHost: other\r\n\r\n"
        let parsed = try XCTUnwrap(try parse(text).first)
        XCTAssertEqual(parsed.headers, ["host: example.com:8080"])
        var buffer = ByteBuffer(Array(text.utf8))
        var parser = HTTPParser()
        let request = try XCTUnwrap(try parser.next(&buffer))
        XCTAssertEqual(request.path, "/publish/a%20b")
        XCTAssertEqual(request.query, "x=1&y=2")
        XCTAssertEqual(request.header("host"), "example.com:8080")
        XCTAssertNil(statusAtEverySplit(text))
        for (target, path, query) in [
            ("HTTPS://h", "/", ""), ("http://h?q=1", "/", "q=1"), ("http://h/", "/", ""),
            ("http://[::1]:80/healthz", "/healthz", ""),
        ] {
            var buffer = ByteBuffer(Array("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
            let request = try XCTUnwrap(try parser.next(&buffer), target)
            XCTAssertEqual(request.path, Substring(path), target)
            XCTAssertEqual(request.query, Substring(query), target)
        }
    }

    /// Targets that are neither origin-form, absolute-form (http or https) nor `OPTIONS *`.
    func testOtherRequestTargetFormsAre400() throws {
        for target in [
            "healthz", "ftp://h/x", "http:/h/x", "http//h/x", "http://", "http:///x", "http://u@h/x",
            "h:80", "*", "//",
        ] {
            let status = error("GET \(target) HTTP/1.1\r\nHost: h\r\n\r\n")?.status
            if target == "//" { XCTAssertNil(status, "\"//\" is an origin-form path"); continue }
            XCTAssertEqual(status, 400, target)
        }
        XCTAssertEqual(try parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").map(\.target), ["*"])
    }

    /// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing; 400 and close.
    func testTransferEncodingInHTTP10Is400() {
        let text = "POST /publish/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        XCTAssertEqual(statusAtEverySplit(text), 400)
        XCTAssertEqual(error(text)?.closesConnection, true)
        XCTAssertEqual(error("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc")?.status, 400)
    }

    /// RFC 9110 §10.1.1: an HTTP/1.1 head with `Expect: 100-continue` and a body to come asks
    /// the connection for `100 Continue`; once the body arrives nothing more is wanted.
    func testExpectContinueIsWantedUntilTheBodyArrives() throws {
        var parser = HTTPParser()
        var buffer = ByteBuffer(Array("POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n".utf8))
        XCTAssertNil(try parser.next(&buffer))
        XCTAssertTrue(parser.wantsContinue)
        parser.continueSent()
        XCTAssertFalse(parser.wantsContinue)
        buffer.append(Array("hello".utf8))
        XCTAssertEqual(try parser.next(&buffer)?.body, Array("hello".utf8))

        // Chunked: wanted until the request is complete (then cleared even if never sent).
        buffer = ByteBuffer(Array((chunkedHead.replacingOccurrences(of: "Host: h", with: "Host: h\r\nExpect: 100-continue")).utf8))
        XCTAssertNil(try parser.next(&buffer))
        XCTAssertTrue(parser.wantsContinue)
        buffer.append(Array("3\r\nabc\r\n0\r\n\r\n".utf8))
        XCTAssertEqual(try parser.next(&buffer)?.body, Array("abc".utf8))
        XCTAssertFalse(parser.wantsContinue)

        // No body, or the body already here, or HTTP/1.0 (whose Expect is ignored): nothing wanted.
        for text in [
            "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
            "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
            "POST / HTTP/1.0\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\nhi",
        ] {
            var parser = HTTPParser()
            var buffer = ByteBuffer(Array(text.utf8))
            XCTAssertNotNil(try parser.next(&buffer), text.debugDescription)
            XCTAssertFalse(parser.wantsContinue, text.debugDescription)
        }
        var http10 = HTTPParser()
        buffer = ByteBuffer(Array("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8))
        XCTAssertNil(try http10.next(&buffer))
        XCTAssertFalse(http10.wantsContinue, "HTTP/1.0 ignores Expect")
    }

    /// Any expectation other than 100-continue is a 417, before the body is read; a Content-Length
    /// over the limit is a 413 at once, before any 100 Continue.
    func testUnknownExpectationIs417AndOversizeBodyIs413AtOnce() {
        for value in ["200-ok", "100-continue, foo", "100-continue;x=1", "100-continuex"] {
            let e = error("POST / HTTP/1.1\r\nHost: h\r\nExpect: \(value)\r\nContent-Length: 2\r\n\r\nhi")
            XCTAssertEqual(e?.status, 417, value)
            XCTAssertEqual(e?.code, "expectation_failed", value)
        }
        XCTAssertNil(error("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, \r\nContent-Length: 2\r\n\r\nhi"))
        var parser = HTTPParser(maxHeaderBytes: 1024, maxBodyBytes: 10)
        var buffer = ByteBuffer(Array("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n".utf8))
        XCTAssertThrowsError(try parser.next(&buffer)) { XCTAssertEqual(($0 as? HTTPError)?.status, 413) }
        XCTAssertFalse(parser.wantsContinue)
    }
}
