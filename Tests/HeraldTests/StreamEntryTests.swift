// StreamEntry: entries read from an XRANGE/XREADGROUP-shaped reply, and the envelope every
// reader receives, byte for byte (JSON, SSE event with its id, WebSocket frame).
import Herald
import XCTest

final class StreamEntryTests: XCTestCase {
    private func bulk(_ text: String) -> RedisReply { .string(Array(text.utf8)) }
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    private func entry(_ id: String, _ fields: [String]) -> RedisReply {
        .array([bulk(id), .array(fields.map(bulk))])
    }

    private func fields(_ entry: StreamEntry) -> [[String]] { entry.fields.map { [text($0.0), text($0.1)] } }

    func testListFromAnXRANGEReply() {
        let reply = RedisReply.array([
            entry("1732460000000-0", ["sku", "A1", "qty", "2"]),
            entry("1732460000000-1", ["data", "x"]),
            entry("1732460000005-0", []),
        ])
        let entries = StreamEntry.list(reply, stream: "orders")
        XCTAssertEqual(entries.map(\.id.description), ["1732460000000-0", "1732460000000-1", "1732460000005-0"])
        XCTAssertEqual(entries.map(\.stream), ["orders", "orders", "orders"])
        XCTAssertEqual(fields(entries[0]), [["sku", "A1"], ["qty", "2"]], "fields keep Redis order")
        XCTAssertEqual(fields(entries[1]), [["data", "x"]])
        XCTAssertEqual(fields(entries[2]), [])
    }

    func testDeletedPendingEntryKeepsItsIDWithNoFields() {
        // XREADGROUP reports an entry deleted while pending as [id, nil].
        let entries = StreamEntry.list(.array([.array([bulk("5-0"), .null]), entry("6-0", ["a", "b"])]), stream: "jobs")
        XCTAssertEqual(entries.map(\.id.description), ["5-0", "6-0"])
        XCTAssertEqual(fields(entries[0]), [])
        XCTAssertEqual(fields(entries[1]), [["a", "b"]])
    }

    func testBinaryFieldsAreKeptAsBytes() {
        let reply = RedisReply.array([.array([bulk("1-0"), .array([bulk("img"), .string([0xFF, 0x00, 0xD8])])])])
        let entries = StreamEntry.list(reply, stream: "s")
        XCTAssertEqual(entries.first?.fields.first?.1, [0xFF, 0x00, 0xD8])
    }

    func testNotAnArrayGivesNoEntries() {
        XCTAssertTrue(StreamEntry.list(.null, stream: "s").isEmpty)
        XCTAssertTrue(StreamEntry.list(.error("WRONGTYPE Operation against a key"), stream: "s").isEmpty)
        XCTAssertTrue(StreamEntry.list(.array([]), stream: "s").isEmpty)
    }

    func testMalformedItemsAreSkipped() {
        let reply = RedisReply.array([
            .integer(1), .array([bulk("1-0")]), .array([bulk("not-an-id"), .array([])]),
            .array([bulk("1-0"), .array([]), .array([])]), entry("2-0", ["k", "v"]),
        ])
        XCTAssertEqual(StreamEntry.list(reply, stream: "s").map(\.id.description), ["2-0"])
    }

    func testOddFieldCountDropsTheDanglingName() {
        let entries = StreamEntry.list(.array([entry("1-0", ["a", "1", "b"])]), stream: "s")
        XCTAssertEqual(fields(entries[0]), [["a", "1"]])
    }

    func testEnvelope() {
        let e = StreamEntry(
            stream: "orders", id: StreamID(ms: 1_732_460_000_000),
            fields: [(Array("sku".utf8), Array("A1".utf8)), (Array("qty".utf8), Array("2".utf8))])
        XCTAssertEqual(
            text(e.envelope()),
            #"{"type":"entry","stream":"orders","id":"1732460000000-0","fields":{"sku":"A1","qty":"2"}}"#)
    }

    func testEnvelopeWithGroup() {
        let e = StreamEntry(stream: "jobs", id: StreamID(ms: 1_732_460_000_001), fields: [(Array("data".utf8), Array("x".utf8))])
        XCTAssertEqual(
            text(e.envelope(group: "billing")),
            #"{"type":"entry","stream":"jobs","group":"billing","id":"1732460000001-0","fields":{"data":"x"}}"#)
    }

    func testEnvelopeWithNoFields() {
        let e = StreamEntry(stream: "s", id: StreamID(ms: 5, seq: 1), fields: [])
        XCTAssertEqual(text(e.envelope()), #"{"type":"entry","stream":"s","id":"5-1","fields":{}}"#)
    }

    func testEnvelopeEscapesNamesAndValues() throws {
        let e = StreamEntry(
            stream: "a\"b", id: StreamID(ms: 1),
            fields: [(Array("k\\1".utf8), Array("line1\nline2\t\"q\"\u{1}é".utf8))])
        XCTAssertEqual(
            text(e.envelope()),
            #"{"type":"entry","stream":"a\"b","id":"1-0","fields":{"k\\1":"line1\nline2\t\"q\"\u0001é"}}"#)
        let json = try JSONValue.parse(e.envelope())
        XCTAssertEqual(json["fields"]?["k\\1"]?.stringValue, "line1\nline2\t\"q\"\u{1}é")
    }

    func testBinaryValueMakesTheWholeEntryBase64() {
        // One flag for the whole entry: every name and value is base64 once any of them is not
        // UTF-8, so a client decodes them all alike.
        let e = StreamEntry(
            stream: "img", id: StreamID(ms: 1, seq: 2),
            fields: [(Array("name".utf8), Array("a.png".utf8)), (Array("data".utf8), [0xFF, 0x00, 0xC0, 0xAF])])
        XCTAssertEqual(
            text(e.envelope()),
            #"{"type":"entry","stream":"img","id":"1-2","fields":{"bmFtZQ==":"YS5wbmc=","ZGF0YQ==":"/wDArw=="},"encoding":"base64"}"#)
    }

    func testBinaryFieldNameAlsoMeansBase64() throws {
        let e = StreamEntry(stream: "s", id: StreamID(ms: 1), fields: [([0xC3, 0x28], Array("v".utf8))])
        let json = try JSONValue.parse(e.envelope(group: "g"))
        XCTAssertEqual(json["encoding"]?.stringValue, "base64")
        XCTAssertEqual(json["group"]?.stringValue, "g")
        XCTAssertEqual(json["fields"]?["wyg="]?.stringValue, "dg==")
        XCTAssertTrue(UTF8Validation.isValid(e.envelope()))
    }

    func testEventCarriesTheEntryID() {
        let e = StreamEntry(stream: "orders", id: StreamID(ms: 7, seq: 3), fields: [(Array("a".utf8), Array("b".utf8))])
        XCTAssertEqual(
            text(e.event.bytes),
            "id: 7-3\ndata: {\"type\":\"entry\",\"stream\":\"orders\",\"id\":\"7-3\",\"fields\":{\"a\":\"b\"}}\n\n")
        XCTAssertTrue(e.event === e.event, "encoded once")
    }

    func testEventKeepsAnEscapedNewlineOnOneDataLine() {
        let e = StreamEntry(stream: "s", id: StreamID(ms: 1), fields: [(Array("a".utf8), Array("x\ny".utf8))])
        XCTAssertEqual(text(e.event.bytes), "id: 1-0\ndata: {\"type\":\"entry\",\"stream\":\"s\",\"id\":\"1-0\",\"fields\":{\"a\":\"x\\ny\"}}\n\n")
    }

    func testFrameIsTheEnvelopeAsOneTextFrame() {
        let e = StreamEntry(stream: "s", id: StreamID(ms: 1), fields: [(Array("a".utf8), Array("b".utf8))])
        XCTAssertEqual(e.frame.bytes, FrameEncoder.encode(.text, e.envelope()))
        XCTAssertEqual(e.frame.bytes.first, 0x81)
        XCTAssertTrue(e.frame === e.frame)
    }
}
