// MessageAssembler: fragmentation with interleaved control frames, UTF-8 validation of text
// (RFC 6455 §8.1), and close payload rules (§5.5.1, §7.4).
import Herald
import HeraldTestSupport
import XCTest

final class MessageAssemblerTests: XCTestCase {
    /// Decodes `stream` and feeds every frame to one assembler; returns the events.
    private func events(_ stream: [UInt8], maxMessage: Int = 1 << 20) throws(WebSocketError) -> [WebSocketEvent] {
        let decoder = FrameDecoder(maxPayload: maxMessage)
        var assembler = MessageAssembler(maxMessage: maxMessage)
        var buffer = ByteBuffer(stream)
        var events: [WebSocketEvent] = []
        while let frame = try decoder.next(&buffer) {
            if let event = try assembler.receive(frame) { events.append(event) }
        }
        XCTAssertTrue(buffer.isEmpty)
        return events
    }

    private func refusal(_ stream: [UInt8], maxMessage: Int = 1 << 20) -> WebSocketError? {
        do throws(WebSocketError) {
            _ = try events(stream, maxMessage: maxMessage)
            return nil
        } catch {
            return error
        }
    }

    func testWholeMessages() throws {
        XCTAssertEqual(
            try events(ClientFrameEncoder.text("héllo") + ClientFrameEncoder.binary([0xFF, 0x00])),
            [.text(Array("héllo".utf8)), .binary([0xFF, 0x00])])
    }

    func testEmptyTextMessage() throws {
        XCTAssertEqual(try events(ClientFrameEncoder.text("")), [.text([])])
    }

    func testFragmentedTextWithPingInterleaved() throws {
        let stream =
            ClientFrameEncoder.text("Hel", fin: false) + ClientFrameEncoder.ping(Array("p".utf8))
            + ClientFrameEncoder.continuation(Array("lo, ".utf8), fin: false) + ClientFrameEncoder.pong([])
            + ClientFrameEncoder.continuation(Array("world".utf8), fin: true)
        XCTAssertEqual(try events(stream), [.ping(Array("p".utf8)), .pong([]), .text(Array("Hello, world".utf8))])
    }

    func testFragmentedBinaryThenAnotherMessage() throws {
        let stream =
            ClientFrameEncoder.binary([1], fin: false) + ClientFrameEncoder.continuation([2], fin: false)
            + ClientFrameEncoder.continuation([3]) + ClientFrameEncoder.text("next")
        XCTAssertEqual(try events(stream), [.binary([1, 2, 3]), .text(Array("next".utf8))])
    }

    /// A multi-byte character cut between fragments is valid once joined.
    func testUTF8SplitAcrossFragmentsIsValid() throws {
        let euro = Array("€".utf8)
        let stream =
            ClientFrameEncoder.frame(opcode: 0x1, [euro[0]], fin: false)
            + ClientFrameEncoder.continuation([euro[1]], fin: false) + ClientFrameEncoder.continuation([euro[2]])
        XCTAssertEqual(try events(stream), [.text(euro)])
    }

    func testContinuationWithoutStartIs1002() {
        XCTAssertEqual(refusal(ClientFrameEncoder.continuation(Array("x".utf8)))?.code, 1002)
        XCTAssertEqual(refusal(ClientFrameEncoder.text("a") + ClientFrameEncoder.continuation([1]))?.code, 1002)
    }

    func testNewDataFrameDuringFragmentationIs1002() {
        XCTAssertEqual(refusal(ClientFrameEncoder.text("a", fin: false) + ClientFrameEncoder.text("b"))?.code, 1002)
        XCTAssertEqual(refusal(ClientFrameEncoder.text("a", fin: false) + ClientFrameEncoder.binary([1], fin: false))?.code, 1002)
    }

    func testInvalidUTF8TextIs1007() {
        XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x1, [0x68, 0xC0, 0xAF]))?.code, 1007)
        XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x1, [0xED, 0xA0, 0x80]))?.code, 1007)
        let truncated = ClientFrameEncoder.frame(opcode: 0x1, [0xE2, 0x82], fin: false) + ClientFrameEncoder.continuation([])
        XCTAssertEqual(refusal(truncated)?.code, 1007)
    }

    func testInvalidUTF8BinaryIsFine() throws {
        XCTAssertEqual(try events(ClientFrameEncoder.binary([0xC0, 0xAF])), [.binary([0xC0, 0xAF])])
    }

    func testReassembledMessageAboveMaxIs1009() {
        let stream =
            ClientFrameEncoder.binary(Array(repeating: 1, count: 60), fin: false)
            + ClientFrameEncoder.continuation(Array(repeating: 2, count: 41))
        XCTAssertEqual(refusal(stream, maxMessage: 100)?.code, 1009)
        let fits =
            ClientFrameEncoder.binary(Array(repeating: 1, count: 60), fin: false)
            + ClientFrameEncoder.continuation(Array(repeating: 2, count: 40))
        XCTAssertNil(refusal(fits, maxMessage: 100))
    }

    func testEmptyCloseHasNoCode() throws {
        XCTAssertEqual(try events(ClientFrameEncoder.close(code: nil)), [.close(code: nil, reason: "")])
    }

    func testValidCloseWithReason() throws {
        XCTAssertEqual(try events(ClientFrameEncoder.close(code: 1000, reason: "bye ✓")), [.close(code: 1000, reason: "bye ✓")])
        for code: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
            XCTAssertEqual(try events(ClientFrameEncoder.close(code: code)), [.close(code: code, reason: "")], "code \(code)")
        }
    }

    func testRegisteredCodes1012To1014AreAccepted() throws {
        // IANA's WebSocket close code registry: 1012 Service Restart, 1013 Try Again Later,
        // 1014 Bad Gateway. Herald sends 1013 itself; a client may send them too.
        for code: UInt16 in [1012, 1013, 1014] {
            XCTAssertEqual(try events(ClientFrameEncoder.close(code: code, reason: "r")), [.close(code: code, reason: "r")], "code \(code)")
        }
    }

    func testEveryCloseCodeIsJudgedByTheRegistry() {
        // Valid: the registered codes a peer may send (1000-1003, 1007-1014) and the ranges for
        // libraries and applications (3000-4999). 1004-1006 and 1015 are reserved (never on the
        // wire), 1016-2999 unassigned, 0-999 and 5000+ outside the code space.
        func valid(_ code: UInt16) -> Bool { (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code) }
        for code in UInt16(0)...UInt16(5100) {
            let error = refusal(ClientFrameEncoder.close(code: code))
            if valid(code) {
                XCTAssertNil(error, "code \(code) must be accepted")
            } else {
                XCTAssertEqual(error?.code, 1002, "code \(code) must close with 1002")
            }
        }
    }

    func testClosePayloadOfOneByteIs1002() {
        XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x8, [0x03]))?.code, 1002)
    }

    func testInvalidCloseCodesAre1002() {
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            XCTAssertEqual(refusal(ClientFrameEncoder.close(code: code))?.code, 1002, "code \(code)")
        }
    }

    func testCloseReasonThatIsNotUTF8Is1007() {
        XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x8, [0x03, 0xE8, 0xFF, 0xFE]))?.code, 1007)
    }
}
