// FrameEncoder: server frames are unmasked, with the shortest length encoding (RFC 6455 §5.2).
import Herald
import XCTest

final class FrameEncoderTests: XCTestCase {
    func testHeaderForEachLengthEncoding() {
        let cases: [(Int, [UInt8])] = [
            (0, [0x82, 0]),
            (125, [0x82, 125]),
            (126, [0x82, 126, 0x00, 0x7E]),
            (65535, [0x82, 126, 0xFF, 0xFF]),
            (65536, [0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
        ]
        for (length, header) in cases {
            let payload = [UInt8](repeating: 0xAB, count: length)
            let frame = FrameEncoder.encode(.binary, payload)
            XCTAssertEqual(Array(frame.prefix(header.count)), header, "length \(length)")
            XCTAssertEqual(frame.count, header.count + length, "length \(length)")
            XCTAssertEqual(Array(frame.dropFirst(header.count)), payload, "length \(length)")
            var written: [UInt8] = []
            FrameEncoder.writeHeader(.binary, length: length, into: &written)
            XCTAssertEqual(written, header, "writeHeader, length \(length)")
        }
    }

    func testOpcodesAndFin() {
        XCTAssertEqual(FrameEncoder.encode(.text, Array("Hello".utf8)), [0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F], "RFC 6455 §5.7")
        XCTAssertEqual(FrameEncoder.encode(.text, Array("Hel".utf8), fin: false), [0x01, 0x03, 0x48, 0x65, 0x6C])
        XCTAssertEqual(FrameEncoder.encode(.continuation, Array("lo".utf8)), [0x80, 0x02, 0x6C, 0x6F])
        XCTAssertEqual(FrameEncoder.encode(.ping, [1, 2]), [0x89, 0x02, 1, 2])
        XCTAssertEqual(FrameEncoder.encode(.pong, [UInt8]()), [0x8A, 0x00])
    }

    func testCloseFrameCarriesCodeAndReason() {
        XCTAssertEqual(FrameEncoder.close(code: 1000), [0x88, 0x02, 0x03, 0xE8])
        XCTAssertEqual(FrameEncoder.close(code: 1001, reason: "bye"), [0x88, 0x05, 0x03, 0xE9, 0x62, 0x79, 0x65])
        XCTAssertEqual(FrameEncoder.close(code: 1009, reason: "")[2...3], [0x03, 0xF1])
    }

    func testCloseReasonIsCutToFitAControlFrameWithoutSplittingACharacter() {
        let long = FrameEncoder.close(code: 1002, reason: String(repeating: "x", count: 300))
        XCTAssertEqual(long[1], 125)
        XCTAssertEqual(long.count, 127)
        // 61 two-byte characters plus one: cutting at 123 bytes would split the 62nd.
        let accented = FrameEncoder.close(code: 1002, reason: String(repeating: "é", count: 62))
        XCTAssertEqual(accented[1], 2 + 122)
        XCTAssertTrue(UTF8Validation.isValid(accented[4...]))
    }
}
