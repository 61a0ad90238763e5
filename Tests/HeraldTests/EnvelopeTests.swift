// Envelope: the JSON every subscriber receives, checked byte for byte and by parsing it back.
import Herald
import XCTest

final class EnvelopeTests: XCTestCase {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    func testChannelMessage() {
        let d = Delivery(kind: .channel, channel: Array("news".utf8), payload: Array("hello".utf8))
        XCTAssertEqual(text(Envelope.delivery(d)), #"{"type":"message","channel":"news","data":"hello"}"#)
    }

    func testPatternMessage() {
        let d = Delivery(kind: .pattern, channel: Array("mail-1".utf8), pattern: Array("mail-*".utf8), payload: Array("hi".utf8))
        XCTAssertEqual(text(Envelope.delivery(d)), #"{"type":"pmessage","pattern":"mail-*","channel":"mail-1","data":"hi"}"#)
    }

    func testShardMessage() {
        let d = Delivery(kind: .shard, channel: Array("s".utf8), payload: Array("x".utf8))
        XCTAssertEqual(text(Envelope.delivery(d)), #"{"type":"smessage","channel":"s","data":"x"}"#)
    }

    func testPayloadIsEscaped() throws {
        let payload = "{\"json\":\"in\\side\"}\n\u{1}"
        let d = Delivery(kind: .channel, channel: Array("c\"h".utf8), payload: Array(payload.utf8))
        let json = try JSONValue.parse(Envelope.delivery(d))
        XCTAssertEqual(json["data"]?.stringValue, payload)
        XCTAssertEqual(json["channel"]?.stringValue, "c\"h")
        XCTAssertNil(json["encoding"])
    }

    func testInvalidUTF8PayloadIsBase64() throws {
        let d = Delivery(kind: .channel, channel: Array("bin".utf8), payload: [0xFF, 0x00, 0xC0, 0xAF])
        XCTAssertEqual(text(Envelope.delivery(d)), #"{"type":"message","channel":"bin","data":"/wDArw==","encoding":"base64"}"#)
        let p = Delivery(kind: .pattern, channel: Array("b1".utf8), pattern: Array("b*".utf8), payload: [0xED, 0xA0, 0x80])
        let json = try JSONValue.parse(Envelope.delivery(p))
        XCTAssertEqual(json["encoding"]?.stringValue, "base64")
        XCTAssertEqual(json["data"]?.stringValue, "7aCA")
        XCTAssertEqual(json["pattern"]?.stringValue, "b*")
    }

    func testEmptyPayload() {
        let d = Delivery(kind: .channel, channel: Array("c".utf8), payload: [])
        XCTAssertEqual(text(Envelope.delivery(d)), #"{"type":"message","channel":"c","data":""}"#)
    }

    func testInvalidUTF8ChannelNameIsStillValidJSON() throws {
        let d = Delivery(kind: .channel, channel: [0x61, 0xFF], payload: Array("p".utf8))
        let bytes = Envelope.delivery(d)
        XCTAssertTrue(UTF8Validation.isValid(bytes))
        XCTAssertEqual(try JSONValue.parse(bytes)["channel"]?.stringValue, "a\u{FFFD}")
    }

    func testDeliveryFramesAreEncodedOnce() {
        let d = Delivery(kind: .channel, channel: Array("c".utf8), payload: Array("p".utf8))
        XCTAssertTrue(d.jsonFrame === d.jsonFrame)
        XCTAssertEqual(d.jsonFrame.bytes, FrameEncoder.encode(.text, Envelope.delivery(d)))
        XCTAssertEqual(d.rawFrame.bytes, [0x81, 0x01, 0x70])
        XCTAssertEqual(Delivery(kind: .channel, channel: [], payload: [0xFF]).rawFrame.bytes, [0x82, 0x01, 0xFF])
    }

    func testAnswersCarryTheirId() {
        XCTAssertEqual(text(Envelope.answer("pong", id: .number("7"))), #"{"type":"pong","id":7}"#)
        XCTAssertEqual(text(Envelope.answer("pong", id: nil)), #"{"type":"pong"}"#)
        XCTAssertEqual(
            text(Envelope.subscribed("subscribed", kind: .pattern, names: ["a*", "b\""], id: .string("x"))),
            #"{"type":"subscribed","kind":"pattern","names":["a*","b\""],"id":"x"}"#)
        XCTAssertEqual(
            text(Envelope.error(code: "bad_json", message: "no", id: .object(["k": .null]))),
            #"{"type":"error","code":"bad_json","message":"no","id":{"k":null}}"#)
    }

    func testGapAndDropped() {
        XCTAssertEqual(text(Envelope.gap(kind: .channel, name: "news")), #"{"type":"gap","kind":"channel","channel":"news"}"#)
        XCTAssertEqual(text(Envelope.gap(kind: .pattern, name: "m*")), #"{"type":"gap","kind":"pattern","pattern":"m*"}"#)
        XCTAssertEqual(text(Envelope.gap(kind: .shard, name: "s")), #"{"type":"gap","kind":"shard","channel":"s"}"#)
        XCTAssertEqual(text(Envelope.dropped(3)), #"{"type":"dropped","count":3}"#)
    }
}
