// EventStream: the Server-Sent Events wire format (HTML Living Standard §9.2.6), byte for byte:
// every line break in the data (LF, CRLF, CR) starts a new `data:` line, and an event ends
// with a blank line.
import Herald
import XCTest

final class EventStreamTests: XCTestCase {
    private func event(_ data: String, id: String? = nil, event name: String? = nil) -> String {
        String(decoding: EventStream.event(data: Array(data.utf8), id: id, event: name), as: UTF8.self)
    }

    func testSingleLine() {
        XCTAssertEqual(event("hello"), "data: hello\n\n")
    }

    func testWithID() {
        XCTAssertEqual(event("x", id: "1732460000000-0"), "id: 1732460000000-0\ndata: x\n\n")
    }

    func testWithEventName() {
        XCTAssertEqual(event("/w==", event: "binary"), "event: binary\ndata: /w==\n\n")
    }

    func testWithEventNameAndID() {
        XCTAssertEqual(event("x", id: "1-0", event: "binary"), "event: binary\nid: 1-0\ndata: x\n\n")
    }

    func testEmptyData() {
        XCTAssertEqual(event(""), "data: \n\n")
        XCTAssertEqual(event("", id: "2-0"), "id: 2-0\ndata: \n\n")
    }

    func testLineFeedsSplitData() {
        XCTAssertEqual(event("a\nb\nc"), "data: a\ndata: b\ndata: c\n\n")
    }

    func testCRLFIsOneLineBreak() {
        XCTAssertEqual(event("a\r\nb"), "data: a\ndata: b\n\n")
    }

    func testLoneCRIsALineBreak() {
        XCTAssertEqual(event("a\rb"), "data: a\ndata: b\n\n")
    }

    func testMixedAndRepeatedBreaks() {
        XCTAssertEqual(event("a\n\nb"), "data: a\ndata: \ndata: b\n\n")
        XCTAssertEqual(event("a\r\rb"), "data: a\ndata: \ndata: b\n\n")
        XCTAssertEqual(event("a\n\rb"), "data: a\ndata: \ndata: b\n\n", "LF then CR is two breaks")
        XCTAssertEqual(event("a\r\n\r\nb"), "data: a\ndata: \ndata: b\n\n")
        XCTAssertEqual(event("1\r2\n3\r\n4"), "data: 1\ndata: 2\ndata: 3\ndata: 4\n\n")
    }

    func testLeadingAndTrailingBreaks() {
        // A browser joins data lines with LF, so these round-trip to the original text.
        XCTAssertEqual(event("\nx"), "data: \ndata: x\n\n")
        XCTAssertEqual(event("x\n"), "data: x\ndata: \n\n")
        XCTAssertEqual(event("x\r\n"), "data: x\ndata: \n\n")
        XCTAssertEqual(event("x\r"), "data: x\ndata: \n\n")
        XCTAssertEqual(event("\n"), "data: \ndata: \n\n")
    }

    func testDataThatLooksLikeAFieldStaysData() {
        XCTAssertEqual(event("a\nid: 9\nretry: 1\n: c"), "data: a\ndata: id: 9\ndata: retry: 1\ndata: : c\n\n")
    }

    func testBytesAreCopiedAsIs() {
        let bytes = EventStream.event(data: [0x7B, 0xC3, 0xA9, 0x00, 0x7D])
        XCTAssertEqual(bytes, Array("data: ".utf8) + [0x7B, 0xC3, 0xA9, 0x00, 0x7D] + [10, 10])
    }

    func testLargeData() {
        let line = String(repeating: "x", count: 100_000)
        XCTAssertEqual(event(line + "\n" + line), "data: \(line)\ndata: \(line)\n\n")
    }

    func testRetry() {
        XCTAssertEqual(EventStream.retry(3000), Array("retry: 3000\n\n".utf8))
        XCTAssertEqual(EventStream.retry(0), Array("retry: 0\n\n".utf8))
    }

    func testHeartbeatIsAComment() {
        XCTAssertEqual(EventStream.heartbeat, Array(": ping\n\n".utf8))
    }
}
