// MessageInflater, MessageCompressor and the RSV1 rules of the decoder and assembler
// (RFC 7692 §6, §7.2): round trips, the inflated-size cap checked while inflating (a deflate
// bomb), corrupt data, context takeover, and the lazy allocation of zlib's state.
import CZlib
@testable import Herald
import HeraldTestSupport
import XCTest

final class MessageInflaterTests: XCTestCase {
    /// `message` as permessage-deflate compresses it: raw DEFLATE, tail removed.
    private func deflated(_ message: [UInt8], windowBits: Int = 15) -> [UInt8] {
        let deflater = MessageDeflater(windowBits: windowBits)!
        return message.withUnsafeBytes { deflater.compress($0) { Array($0) } }!
    }

    private func inflate(_ inflater: MessageInflater, _ compressed: [UInt8], limit: Int = 1 << 20) -> Result<[UInt8], WebSocketError> {
        do throws(WebSocketError) {
            return .success(try inflater.inflate(compressed, limit: limit))
        } catch {
            return .failure(error)
        }
    }

    private let json = Array(String(repeating: #"{"type":"message","channel":"news","data":"hello"}"#, count: 40).utf8)

    func testRoundTrip() throws {
        let compressed = deflated(json)
        XCTAssertLessThan(compressed.count, json.count / 5)
        XCTAssertEqual(try inflate(MessageInflater(contextTakeover: false), compressed).get(), json)
    }

    func testEveryWindowSizeRoundTrips() throws {
        for bits in 9...15 {
            XCTAssertEqual(try inflate(MessageInflater(contextTakeover: false), deflated(json, windowBits: bits)).get(), json, "\(bits)")
        }
    }

    func testInflatedSizeCapStopsADeflateBomb() {
        // 64 MB of zeros compress to about 64 KB; the cap is 1 MB.
        let bomb = [UInt8](repeating: 0, count: 64 << 20)
        let compressed = deflated(bomb)
        XCTAssertLessThan(compressed.count, 100_000)
        let inflater = MessageInflater(contextTakeover: false)
        XCTAssertEqual(inflate(inflater, compressed).failure?.code, CloseCode.messageTooBig)
        // The inflater is reset after the refusal: the loop's shared one serves the next client.
        XCTAssertEqual(try inflate(inflater, deflated(json)).get(), json)
    }

    func testCapIsExact() throws {
        let message = [UInt8](repeating: 0x61, count: 1000)
        XCTAssertEqual(try inflate(MessageInflater(contextTakeover: false), deflated(message), limit: 1000).get(), message)
        XCTAssertEqual(inflate(MessageInflater(contextTakeover: false), deflated(message), limit: 999).failure?.code, CloseCode.messageTooBig)
    }

    func testCorruptDataIsInvalidPayload() {
        let inflater = MessageInflater(contextTakeover: false)
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        XCTAssertEqual(inflate(inflater, [0xFF, 0xFF, 0xFF, 0xFF]).failure?.code, CloseCode.invalidPayload)
        // A stored block whose LEN and NLEN do not match.
        XCTAssertEqual(inflate(inflater, [0x00, 0x05, 0x00, 0x00, 0x00]).failure?.code, CloseCode.invalidPayload)
        XCTAssertEqual(try inflate(inflater, deflated(json)).get(), json)
    }

    func testContextTakeoverAcrossMessages() throws {
        // A client that keeps its window: the second message refers back into the first.
        var stream = z_stream()
        XCTAssertEqual(herald_deflate_init(&stream, 6, 15, 8), Z_OK)
        defer { deflateEnd(&stream) }
        func next(_ message: [UInt8]) -> [UInt8] {
            var input = message
            var out = [UInt8](repeating: 0, count: 4096)
            let written = input.withUnsafeMutableBufferPointer { input in
                out.withUnsafeMutableBufferPointer { out in
                    stream.next_in = input.baseAddress
                    stream.avail_in = UInt32(input.count)
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    XCTAssertEqual(deflate(&stream, Z_SYNC_FLUSH), Z_OK)
                    return out.count - Int(stream.avail_out)
                }
            }
            return Array(out[0..<(written - 4)])
        }
        let first = next(json)
        let second = next(json)
        XCTAssertLessThan(second.count, first.count / 2, "the second message is a back-reference")
        let inflater = MessageInflater(contextTakeover: true)
        XCTAssertEqual(try inflate(inflater, first).get(), json)
        XCTAssertEqual(try inflate(inflater, second).get(), json)
        // Without context takeover the back-reference cannot be resolved.
        let alone = MessageInflater(contextTakeover: false)
        XCTAssertEqual(try inflate(alone, first).get(), json)
        XCTAssertEqual(inflate(alone, second).failure?.code, CloseCode.invalidPayload)
    }

    func testStateIsAllocatedOnFirstMessage() throws {
        let inflater = MessageInflater(contextTakeover: true)
        XCTAssertFalse(inflater.isAllocated)
        _ = try inflate(inflater, deflated(json)).get()
        XCTAssertTrue(inflater.isAllocated)
    }

    // MARK: outbound

    func testCompressorHonoursTheMinimum() throws {
        let compressor = MessageCompressor(minSize: 256)
        let small = [UInt8](repeating: 0x61, count: 255)
        XCTAssertEqual(compressor.frame(.text, small, windowBits: 15).bytes, FrameEncoder.encode(.text, small))
        XCTAssertEqual(compressor.compressions, 0)
        let frame = compressor.frame(.text, json, windowBits: 15).bytes
        XCTAssertEqual(frame[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text")
        XCTAssertEqual(compressor.compressions, 1)
        let payload = Array(frame[FrameEncoder.headerLength(ofFrame: Chunk.of(frame))...])
        XCTAssertEqual(try inflate(MessageInflater(contextTakeover: false), payload).get(), json)
    }

    func testDeliveryIsCompressedOncePerWindow() throws {
        let compressor = MessageCompressor(minSize: 256)
        let delivery = Delivery(kind: .channel, channel: Array("news".utf8), payload: json)
        let first = delivery.deflatedFrame(raw: false, windowBits: 15, compressor: compressor)
        for _ in 0..<100 { XCTAssertTrue(delivery.deflatedFrame(raw: false, windowBits: 15, compressor: compressor) === first) }
        XCTAssertEqual(compressor.compressions, 1)
        _ = delivery.deflatedFrame(raw: true, windowBits: 15, compressor: compressor)
        _ = delivery.deflatedFrame(raw: false, windowBits: 10, compressor: compressor)
        XCTAssertEqual(compressor.compressions, 3)
        let payload = Array(first.bytes[FrameEncoder.headerLength(ofFrame: first)...])
        let envelope = Array(delivery.jsonFrame.bytes[FrameEncoder.headerLength(ofFrame: delivery.jsonFrame)...])
        XCTAssertEqual(try inflate(MessageInflater(contextTakeover: false), payload).get(), envelope)
        // A small delivery shares the plain frame.
        let small = Delivery(kind: .channel, channel: Array("news".utf8), payload: Array("hi".utf8))
        XCTAssertTrue(small.deflatedFrame(raw: false, windowBits: 15, compressor: compressor) === small.jsonFrame)
    }

    // MARK: RSV1 on the wire

    private func events(_ stream: [UInt8], compression: Bool, maxMessage: Int = 1 << 20) -> Result<[WebSocketEvent], WebSocketError> {
        let decoder = FrameDecoder(maxPayload: maxMessage, allowsCompression: compression)
        var assembler = MessageAssembler(maxMessage: maxMessage, inflater: compression ? MessageInflater(contextTakeover: true) : nil)
        var buffer = ByteBuffer(stream)
        var events: [WebSocketEvent] = []
        do throws(WebSocketError) {
            while let frame = try decoder.next(&buffer) {
                if let event = try assembler.receive(frame) { events.append(event) }
            }
        } catch {
            return .failure(error)
        }
        return .success(events)
    }

    func testCompressedMessageWholeAndFragmented() throws {
        let compressed = deflated(json)
        let whole = ClientFrameEncoder.frame(opcode: 0x1, compressed, rsv: 0x40)
        XCTAssertEqual(try events(whole, compression: true).get(), [.text(json)])
        let half = compressed.count / 2
        let fragmented =
            ClientFrameEncoder.frame(opcode: 0x1, Array(compressed[..<half]), fin: false, rsv: 0x40) + ClientFrameEncoder.ping([1])
            + ClientFrameEncoder.continuation(Array(compressed[half...]))
        XCTAssertEqual(try events(fragmented, compression: true).get(), [.ping([1]), .text(json)])
        // Uncompressed messages stay allowed (RSV1 clear).
        XCTAssertEqual(try events(ClientFrameEncoder.text("hi"), compression: true).get(), [.text(Array("hi".utf8))])
    }

    func testRSV1RulesAreProtocolErrors() {
        let compressed = deflated(json)
        let cases: [(String, [UInt8], Bool)] = [
            ("RSV1 without negotiation", ClientFrameEncoder.frame(opcode: 0x1, compressed, rsv: 0x40), false),
            ("RSV1 on a ping", ClientFrameEncoder.frame(opcode: 0x9, [], rsv: 0x40), true),
            ("RSV1 on a close", ClientFrameEncoder.frame(opcode: 0x8, [0x03, 0xE8], rsv: 0x40), true),
            (
                "RSV1 on a continuation",
                ClientFrameEncoder.frame(opcode: 0x1, Array(compressed[..<4]), fin: false, rsv: 0x40)
                    + ClientFrameEncoder.frame(opcode: 0x0, Array(compressed[4...]), rsv: 0x40), true
            ),
            ("RSV2", ClientFrameEncoder.frame(opcode: 0x1, compressed, rsv: 0x20), true),
            ("RSV3", ClientFrameEncoder.frame(opcode: 0x1, compressed, rsv: 0x10), true),
        ]
        for (name, stream, compression) in cases {
            XCTAssertEqual(events(stream, compression: compression).failure?.code, CloseCode.protocolError, name)
        }
    }

    func testCompressedTextIsValidatedAfterInflating() {
        let compressed = deflated([0x68, 0xFF, 0x69])
        XCTAssertEqual(events(ClientFrameEncoder.frame(opcode: 0x1, compressed, rsv: 0x40), compression: true).failure?.code, CloseCode.invalidPayload)
    }

    func testBombOverTheWireClosesWith1009() {
        let compressed = deflated([UInt8](repeating: 0x20, count: 8 << 20))
        let stream = ClientFrameEncoder.frame(opcode: 0x2, compressed, rsv: 0x40)
        XCTAssertEqual(events(stream, compression: true, maxMessage: 1 << 20).failure?.code, CloseCode.messageTooBig)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
