// Compresses one message for permessage-deflate (RFC 7692 §7.2.1), sans I/O: raw DEFLATE,
// flushed to a byte boundary, the trailing 00 00 FF FF removed, and the state reset after
// each message (server_no_context_takeover), so the result depends on the message alone and
// can be shared by every client that agreed to the same window.
import CZlib

/// zlib's compressor for one window size; one per loop and window, made on first use
/// (about 256 KB at 15 bits). Confined to its loop.
final class MessageDeflater {
    private let stream: UnsafeMutablePointer<z_stream>

    /// zlib's default level: JSON shrinks 3-10x; level 1 saves little CPU on 1 KB messages
    /// and compresses worse.
    private static let level: Int32 = 6
    /// zlib's default hash memory (memLevel 8).
    private static let memoryLevel: Int32 = 8

    init?(windowBits: Int) {
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard herald_deflate_init(stream, Self.level, Int32(windowBits), Self.memoryLevel) == Z_OK else {
            stream.deallocate()
            return nil
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// `message` compressed, passed to `body` (valid only during the call), or nil when zlib
    /// failed.
    func compress<R>(_ message: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        defer { deflateReset(stream) }
        // deflateBound covers a whole stream; the sync flush adds at most an empty stored block.
        let capacity = Int(deflateBound(stream, UInt(message.count))) + 16
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { out -> R? in
            stream.pointee.next_in = UnsafeMutablePointer(mutating: message.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.pointee.avail_in = UInt32(message.count)
            stream.pointee.next_out = out.baseAddress
            stream.pointee.avail_out = UInt32(capacity)
            let status = deflate(stream, Z_SYNC_FLUSH)
            let written = capacity - Int(stream.pointee.avail_out)
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil
            guard status == Z_OK, stream.pointee.avail_in == 0, stream.pointee.avail_out > 0, written >= 4 else { return nil }
            // The sync flush ends in an empty stored block, 00 00 FF FF, which §7.2.1 removes.
            guard out[written - 4] == 0, out[written - 3] == 0, out[written - 2] == 0xFF, out[written - 1] == 0xFF else {
                return nil
            }
            return body(UnsafeRawBufferPointer(start: out.baseAddress, count: written - 4))
        }
    }
}
