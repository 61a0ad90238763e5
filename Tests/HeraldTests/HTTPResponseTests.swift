// HTTPResponse: the bytes put on the wire (status line, headers, Content-Length, CORS,
// Connection: close, HEAD) and the chunk holding them.
import Herald
import XCTest

final class HTTPResponseTests: XCTestCase {
    private func text(_ response: HTTPResponse, keepAlive: Bool = true, corsOrigin: String? = nil) -> String {
        String(decoding: response.chunk(keepAlive: keepAlive, corsOrigin: corsOrigin).bytes, as: UTF8.self)
    }

    func testJSONAnswer() {
        XCTAssertEqual(
            text(.json(200, bytes: Array(#"{"a":1}"#.utf8))),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
    }

    func testExtraHeadersFollowTheContentType() {
        let response = HTTPResponse.json(503, "{}", headers: [("Retry-After", "1")])
        XCTAssertEqual(
            text(response),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: 2\r\n\r\n{}")
    }

    func testCORSAndConnectionClose() {
        let response = HTTPResponse(status: 404, body: Array("gone".utf8))
        XCTAssertEqual(
            text(response, keepAlive: false, corsOrigin: "https://app.example"),
            "HTTP/1.1 404 Not Found\r\nAccess-Control-Allow-Origin: https://app.example\r\nVary: Origin\r\n"
                + "Content-Length: 4\r\nConnection: close\r\n\r\ngone")
    }

    func testHeadKeepsTheLengthButNotTheBody() {
        var response = HTTPResponse(status: 200, body: Array(repeating: 120, count: 12345))
        response.omitBody = true
        XCTAssertEqual(text(response), "HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n")
    }

    func testNoContentLengthOn204AndStreams() {
        XCTAssertEqual(text(HTTPResponse(status: 204)), "HTTP/1.1 204 No Content\r\n\r\n")
        var stream = HTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream")])
        stream.streaming = true
        XCTAssertEqual(text(stream), "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
    }

    func testNonASCIIHeaderValuesAndLargeBodiesAreCopiedWhole() {
        let body = (0..<70_000).map { UInt8($0 % 251) }
        let response = HTTPResponse(status: 200, headers: [("X-Name", "café ☕")], body: body)
        let bytes = response.chunk(keepAlive: true).bytes
        let head = Array("HTTP/1.1 200 OK\r\nX-Name: café ☕\r\nContent-Length: 70000\r\n\r\n".utf8)
        XCTAssertEqual(bytes, head + body)
    }
}
