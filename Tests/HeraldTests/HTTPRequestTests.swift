// HTTPRequest: keep-alive semantics per version and Connection header, path/query split and
// case-insensitive header lookup.
import Herald
import XCTest

final class HTTPRequestTests: XCTestCase {
    private func request(_ minor: Int, _ headers: [(String, String)] = []) -> HTTPRequest {
        HTTPRequest(
            method: "GET", target: "/", minorVersion: minor,
            headers: headers.map { (name: $0.0.lowercased(), value: $0.1) })
    }

    func testHTTP11KeepsAliveByDefault() {
        XCTAssertTrue(request(1).keepAlive)
        XCTAssertTrue(request(1, [("Connection", "keep-alive")]).keepAlive)
        XCTAssertTrue(request(1, [("Connection", "Upgrade")]).keepAlive)
    }

    func testHTTP11ClosesWhenAsked() {
        XCTAssertFalse(request(1, [("Connection", "close")]).keepAlive)
        XCTAssertFalse(request(1, [("Connection", "Close")]).keepAlive)
        XCTAssertFalse(request(1, [("Connection", "upgrade, close")]).keepAlive)
        XCTAssertFalse(request(1, [("Connection", "keep-alive ,  close ")]).keepAlive)
        XCTAssertTrue(request(1, [("Connection", "closed")]).keepAlive, "only the token close counts")
    }

    func testHTTP10ClosesByDefault() {
        XCTAssertFalse(request(0).keepAlive)
        XCTAssertFalse(request(0, [("Connection", "close")]).keepAlive)
    }

    func testHTTP10KeepsAliveWhenAsked() {
        XCTAssertTrue(request(0, [("Connection", "keep-alive")]).keepAlive)
        XCTAssertTrue(request(0, [("Connection", "Keep-Alive")]).keepAlive)
        XCTAssertTrue(request(0, [("Connection", "foo,\tkeep-alive ")]).keepAlive, "a token of the list")
        XCTAssertFalse(request(0, [("Connection", "keep-alive-ish")]).keepAlive, "only the whole token counts")
    }

    /// RFC 9110 §5.3 and §7.6.1: Connection is a list; two field lines mean the same as one
    /// line joining them, so `close` in the second one must end the connection.
    func testKeepAliveHonoursCloseInASecondConnectionHeader() {
        XCTAssertFalse(request(1, [("Connection", "keep-alive"), ("Connection", "close")]).keepAlive)
    }

    func testParsedRequestKeepAlive() throws {
        var parser = HTTPParser()
        var buffer = ByteBuffer(
            Array(
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n".utf8))
        var answers: [Bool] = []
        while let request = try parser.next(&buffer) { answers.append(request.keepAlive) }
        XCTAssertEqual(answers, [true, false, true])
    }

    func testPathAndQuery() {
        let withQuery = HTTPRequest(method: "GET", target: "/subscribe?channel=a&x=%20")
        XCTAssertEqual(withQuery.path, "/subscribe")
        XCTAssertEqual(withQuery.query, "channel=a&x=%20")
        let without = HTTPRequest(method: "GET", target: "/healthz")
        XCTAssertEqual(without.path, "/healthz")
        XCTAssertEqual(without.query, "")
        XCTAssertEqual(HTTPRequest(method: "GET", target: "/p?").query, "")
    }

    /// RFC 9112 §3.2.2: an absolute-form target routes by the path and query after its authority.
    func testPathAndQueryOfAnAbsoluteFormTarget() {
        let absolute = HTTPRequest(method: "GET", target: "http://h:1/subscribe?channel=a")
        XCTAssertEqual(absolute.target, "http://h:1/subscribe?channel=a")
        XCTAssertEqual(absolute.path, "/subscribe")
        XCTAssertEqual(absolute.query, "channel=a")
        XCTAssertEqual(HTTPRequest(method: "GET", target: "http://h").path, "/")
        XCTAssertEqual(HTTPRequest(method: "GET", target: "https://h?x").path, "/")
        XCTAssertEqual(HTTPRequest(method: "GET", target: "https://h?x").query, "x")
        XCTAssertEqual(HTTPRequest(method: "GET", target: "/a?http://h/b").path, "/a", "only a target that does not start with / is absolute")
    }

    func testHeaderLookupReturnsTheFirstOfANameInAnyCase() {
        // The parser stores names lowercased; lookups are by lowercase name.
        let r = request(1, [("X-Id", "1"), ("x-id", "2"), ("x-idd", "3")])
        XCTAssertEqual(r.header("x-id"), "1")
        XCTAssertEqual(r.header("x-idd"), "3")
        XCTAssertNil(r.header("missing"))
        XCTAssertNil(r.header("x-i"))
    }
}
