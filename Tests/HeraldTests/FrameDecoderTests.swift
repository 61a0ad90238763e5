// FrameDecoder: the three length encodings, unmasking, arrival in any pieces, and each frame
// a client must not send (RFC 6455 §5.1, §5.2, §5.5).
import Herald
import HeraldTestSupport
import XCTest

final class FrameDecoderTests: XCTestCase {
    private func decode(_ pieces: [[UInt8]], maxPayload: Int = 1 << 20) throws(WebSocketError) -> (frames: [WebSocketFrame], leftover: Int) {
        let decoder = FrameDecoder(maxPayload: maxPayload)
        var buffer = ByteBuffer()
        var frames: [WebSocketFrame] = []
        for piece in pieces {
            buffer.append(piece)
            while let frame = try decoder.next(&buffer) { frames.append(frame) }
            buffer.reclaim()
        }
        return (frames, buffer.readableCount)
    }

    private func decode(_ bytes: [UInt8], maxPayload: Int = 1 << 20) throws(WebSocketError) -> [WebSocketFrame] {
        try decode([bytes], maxPayload: maxPayload).frames
    }

    /// The close code the decoder refuses `bytes` with, whole and byte by byte (they must agree).
    private func refusal(_ bytes: [UInt8], maxPayload: Int = 1 << 20, file: StaticString = #filePath, line: UInt = #line) -> UInt16? {
        var whole: UInt16?
        do throws(WebSocketError) { _ = try decode([bytes], maxPayload: maxPayload) } catch { whole = error.code }
        var trickled: UInt16?
        do throws(WebSocketError) { _ = try decode(bytes.map { [$0] }, maxPayload: maxPayload) } catch { trickled = error.code }
        XCTAssertEqual(whole, trickled, "whole and byte-by-byte decodes disagree", file: file, line: line)
        return whole
    }

    private func payload(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) } }

    func testMaskedFramesOfEveryLengthEncoding() throws {
        for (count, headerLength) in [(0, 6), (1, 6), (125, 6), (126, 8), (65535, 8), (65536, 14), (70000, 14)] {
            let data = payload(count)
            let bytes = ClientFrameEncoder.binary(data)
            XCTAssertEqual(bytes.count, headerLength + count, "length \(count)")
            let result = try decode([bytes])
            XCTAssertEqual(result.frames, [WebSocketFrame(fin: true, opcode: .binary, payload: data)], "length \(count)")
            XCTAssertEqual(result.leftover, 0)
        }
    }

    func testUnmasksWithTheFrameKey() throws {
        let frame = ClientFrameEncoder.frame(opcode: 0x1, Array("Hello".utf8), mask: [0x37, 0xFA, 0x21, 0x3D])
        XCTAssertEqual(frame, [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58], "RFC 6455 §5.7 example")
        XCTAssertEqual(try decode(frame), [WebSocketFrame(opcode: .text, payload: Array("Hello".utf8))])
    }

    func testFinBitAndOpcodesAreReported() throws {
        let stream =
            ClientFrameEncoder.text("a", fin: false) + ClientFrameEncoder.continuation([98], fin: true)
            + ClientFrameEncoder.ping([1]) + ClientFrameEncoder.pong([2]) + ClientFrameEncoder.close(code: 1000)
        XCTAssertEqual(
            try decode(stream),
            [
                WebSocketFrame(fin: false, opcode: .text, payload: [97]),
                WebSocketFrame(fin: true, opcode: .continuation, payload: [98]),
                WebSocketFrame(opcode: .ping, payload: [1]),
                WebSocketFrame(opcode: .pong, payload: [2]),
                WebSocketFrame(opcode: .close, payload: [0x03, 0xE8]),
            ])
    }

    func testEverySplitOffsetGivesTheSameFrames() throws {
        for count in [0, 5, 125, 126, 300] {
            let stream = ClientFrameEncoder.binary(payload(count)) + ClientFrameEncoder.ping([9, 9]) + ClientFrameEncoder.text("done")
            let expected = try decode(stream)
            XCTAssertEqual(expected.count, 3)
            for pieces in ByteSplits.all(stream) {
                let result = try decode(pieces)
                XCTAssertEqual(result.frames, expected, "length \(count) split into \(pieces.map(\.count))")
                XCTAssertEqual(result.leftover, 0)
            }
        }
    }

    func testLargeFramesSplitAtEveryHeaderOffset() throws {
        for count in [65535, 65536] {
            let bytes = ClientFrameEncoder.binary(payload(count))
            for cut in 0...20 {
                let result = try decode([Array(bytes[..<cut]), Array(bytes[cut...])])
                XCTAssertEqual(result.frames.map(\.payload.count), [count], "cut at \(cut)")
            }
        }
    }

    func testIncompleteFrameLeavesTheBufferUntouched() throws {
        let decoder = FrameDecoder(maxPayload: 1000)
        let bytes = ClientFrameEncoder.text("hello")
        var buffer = ByteBuffer(Array(bytes.dropLast()))
        XCTAssertNil(try decoder.next(&buffer))
        XCTAssertEqual(buffer.readableCount, bytes.count - 1)
    }

    func testUnmaskedFrameIs1002() {
        XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x1, Array("hi".utf8), mask: nil)), 1002)
    }

    func testReservedBitsAre1002() {
        for rsv: UInt8 in [0x40, 0x20, 0x10] {
            XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x1, [], rsv: rsv)), 1002, "rsv \(rsv)")
        }
    }

    func testReservedOpcodesAre1002() {
        for opcode: UInt8 in [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: opcode, [])), 1002, "opcode \(opcode)")
        }
    }

    func testControlFrameAbove125BytesIs1002() {
        XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x9, payload(126))), 1002)
        XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: 0x8, payload(126))), 1002)
        XCTAssertNoThrow(try decode(ClientFrameEncoder.frame(opcode: 0x9, payload(125))))
    }

    func testFragmentedControlFrameIs1002() {
        for opcode: UInt8 in [0x8, 0x9, 0xA] {
            XCTAssertEqual(refusal(ClientFrameEncoder.frame(opcode: opcode, [1], fin: false)), 1002, "opcode \(opcode)")
        }
    }

    func testFrameAboveMaxPayloadIs1009BeforeThePayloadArrives() {
        XCTAssertEqual(refusal(ClientFrameEncoder.binary(payload(101)), maxPayload: 100), 1009)
        XCTAssertEqual(refusal(ClientFrameEncoder.binary(payload(70000)), maxPayload: 65536), 1009)
        // Only the header: the decoder must refuse without waiting for (or buffering) the payload.
        let decoder = FrameDecoder(maxPayload: 100)
        var header = ByteBuffer([0x82, 0xFE, 0x10, 0x00])
        XCTAssertThrowsError(try decoder.next(&header)) { XCTAssertEqual(($0 as? WebSocketError)?.code, 1009) }
        XCTAssertNil(refusal(ClientFrameEncoder.binary(payload(100)), maxPayload: 100))
    }

    func testSixtyFourBitLengthWithTopBitSetIs1002() {
        let decoder = FrameDecoder(maxPayload: 1000)
        var buffer = ByteBuffer([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4])
        XCTAssertThrowsError(try decoder.next(&buffer)) { XCTAssertEqual(($0 as? WebSocketError)?.code, 1002) }
    }
}
