// Outbound permessage-deflate for one loop: turns a message into a compressed frame (RSV1
// set, RFC 7692 §6), or says to send it plain when it is under `--compression-min` (§6:
// compression is chosen per message). One deflater per window size, shared by every
// client of the loop, since Herald never takes context over from one message to the next.

/// Compresses messages for one loop's clients; confined to that loop.
public final class MessageCompressor {
    /// Messages smaller than this many bytes go uncompressed.
    public let minSize: Int
    /// Deflaters by window bits (index 9-15), made on first use.
    private var deflaters = [MessageDeflater?](repeating: nil, count: 16)
    /// Messages compressed: once per delivery (and window size) however many subscribers get
    /// it, and once per echo or answer.
    public private(set) var compressions = 0

    public init(minSize: Int) { self.minSize = minSize }

    /// Whether a message of `count` bytes is worth compressing at all.
    @inline(__always)
    public func wants(_ count: Int) -> Bool { count >= minSize }

    /// `payload` as one compressed frame for a window of `windowBits`, or nil when it should
    /// go plain: under the minimum, or zlib failed.
    public func frame(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer, windowBits: Int) -> Chunk? {
        guard wants(payload.count), let deflater = deflater(windowBits) else { return nil }
        compressions += 1
        // Sent compressed even in the rare case it does not shrink (random bytes grow by a few
        // bytes): every message at or above the minimum takes the same form.
        return deflater.compress(payload) { compressed -> Chunk in
            var header: [UInt8] = []
            FrameEncoder.writeHeader(opcode, length: compressed.count, into: &header)
            header[0] |= FrameEncoder.rsv1
            return Chunk.make(count: header.count + compressed.count) { out in
                header.withUnsafeBytes { out.copyMemory(from: $0) }
                UnsafeMutableRawBufferPointer(rebasing: out[header.count...]).copyMemory(from: compressed)
            }
        }
    }

    /// `payload` as a frame in the form the client agreed to: compressed when worth it.
    public func frame(_ opcode: WebSocketOpcode, _ payload: [UInt8], windowBits: Int) -> Chunk {
        if wants(payload.count), let chunk = payload.withUnsafeBytes({ frame(opcode, $0, windowBits: windowBits) }) {
            return chunk
        }
        return Chunk.of(FrameEncoder.encode(opcode, payload))
    }

    private func deflater(_ windowBits: Int) -> MessageDeflater? {
        let bits = min(max(windowBits, 9), 15)
        if let deflater = deflaters[bits] { return deflater }
        let deflater = MessageDeflater(windowBits: bits)
        deflaters[bits] = deflater
        return deflater
    }
}
