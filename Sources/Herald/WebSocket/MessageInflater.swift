// Decompresses permessage-deflate messages from a client (RFC 7692 §7.2.2), sans I/O, with a
// hard cap on the inflated size checked while inflating: a few kilobytes that would inflate to
// gigabytes (a deflate bomb) cost at most the cap before the connection is failed with 1009.
import CZlib

/// Inflates one client's messages, or, without context takeover, any client's of one loop.
/// zlib's state (about 7 KB plus the 2^windowBits window) is allocated on the first compressed
/// message and freed with the inflater. Confined to its loop.
public final class MessageInflater {
    /// Window the sender compresses with, bits (9-15).
    private let windowBits: Int32
    /// Whether messages may refer to earlier ones (the client's context takeover); without it
    /// the state is reset before each message, so one inflater can serve every such client.
    private let contextTakeover: Bool
    /// zlib's stream, nil until the first message.
    private var stream: UnsafeMutablePointer<z_stream>?

    /// The 4 bytes the sender removed from the end of each message (§7.2.1).
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    /// Output written per inflate call, bytes.
    private static let step = 16 * 1024

    public init(windowBits: Int = 15, contextTakeover: Bool) {
        self.windowBits = Int32(windowBits)
        self.contextTakeover = contextTakeover
    }

    deinit {
        if let stream {
            inflateEnd(stream)
            stream.deallocate()
        }
    }

    /// Whether zlib's state is allocated (for tests of the lazy allocation).
    public var isAllocated: Bool { stream != nil }

    /// The message `compressed` inflates to. Throws 1009 as soon as the output passes `limit`
    /// bytes, and 1007 when the data is not a DEFLATE stream (RFC 7692 only says to fail the
    /// connection; 1007 is RFC 6455's code for data not consistent with its message type, as
    /// 1002 is for the framing: an RSV1 bit where it may not be, which the decoder refuses).
    public func inflate(_ compressed: [UInt8], limit: Int) throws(WebSocketError) -> [UInt8] {
        let stream = try prepared()
        var input = compressed
        input.append(contentsOf: Self.tail)
        var output: [UInt8] = []
        var failure: WebSocketError?
        input.withUnsafeMutableBufferPointer { input in
            stream.pointee.next_in = input.baseAddress
            stream.pointee.avail_in = UInt32(input.count)
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.step) { scratch in
                while true {
                    stream.pointee.next_out = scratch.baseAddress
                    stream.pointee.avail_out = UInt32(Self.step)
                    let status = CZlib.inflate(stream, Z_SYNC_FLUSH)
                    let produced = Self.step - Int(stream.pointee.avail_out)
                    if output.count + produced > limit {
                        failure = WebSocketError(CloseCode.messageTooBig, "message above \(limit) bytes once inflated")
                        return
                    }
                    output.append(contentsOf: scratch[0..<produced])
                    switch status {
                    case Z_OK:
                        // Done once zlib took all the input and had room to spare.
                        if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 { return }
                    case Z_STREAM_END:
                        // The sender ended the stream (a final block): what follows is our tail.
                        inflateReset(stream)
                        return
                    case Z_BUF_ERROR where stream.pointee.avail_in == 0:
                        return
                    default:
                        failure = WebSocketError(CloseCode.invalidPayload, "compressed message is not valid DEFLATE data")
                        return
                    }
                }
            }
        }
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        if let failure {
            inflateReset(stream)
            throw failure
        }
        return output
    }

    /// zlib's stream, allocated on first use and reset when messages stand alone.
    private func prepared() throws(WebSocketError) -> UnsafeMutablePointer<z_stream> {
        if let stream {
            if !contextTakeover { inflateReset(stream) }
            return stream
        }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard herald_inflate_init(stream, windowBits) == Z_OK else {
            stream.deallocate()
            throw WebSocketError(CloseCode.internalError, "out of memory for inflating")
        }
        self.stream = stream
        return stream
    }
}
