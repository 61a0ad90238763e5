// Decodes client frames from inbound bytes, sans I/O. It rejects what RFC 6455 §5 forbids of a
// client before buffering the payload, so an oversize frame costs no memory.

/// Decodes frames sent by a client (which must mask them). Confined to its connection.
public struct FrameDecoder {
    /// Largest payload accepted in one frame, bytes; larger closes with 1009.
    public let maxPayload: Int
    /// permessage-deflate was agreed: RSV1 marks a compressed message's first frame.
    public let allowsCompression: Bool

    public init(maxPayload: Int, allowsCompression: Bool = false) {
        self.maxPayload = maxPayload
        self.allowsCompression = allowsCompression
    }

    /// The next complete frame, or nil until more bytes arrive.
    public func next(_ buffer: inout ByteBuffer) throws(WebSocketError) -> WebSocketFrame? {
        guard buffer.readableCount >= 2 else { return nil }
        let b0 = buffer[0], b1 = buffer[1]
        let compressed = b0 & FrameEncoder.rsv1 != 0
        guard b0 & 0x30 == 0, !compressed || allowsCompression else {
            throw WebSocketError(CloseCode.protocolError, "reserved bits set without an extension")
        }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else {
            throw WebSocketError(CloseCode.protocolError, "reserved opcode")
        }
        // RFC 7692 §6.1: RSV1 only on the first frame of a data message.
        if compressed && opcode.isControl { throw WebSocketError(CloseCode.protocolError, "RSV1 set on a control frame") }
        if compressed && opcode == .continuation { throw WebSocketError(CloseCode.protocolError, "RSV1 set on a continuation frame") }
        let fin = b0 & 0x80 != 0
        guard b1 & 0x80 != 0 else { throw WebSocketError(CloseCode.protocolError, "client frames must be masked") }
        var length = Int(b1 & 0x7F)
        var headerLength = 2
        if opcode.isControl {
            guard fin else { throw WebSocketError(CloseCode.protocolError, "fragmented control frame") }
            guard length <= 125 else { throw WebSocketError(CloseCode.protocolError, "control frame payload above 125 bytes") }
        }
        if length == 126 {
            guard buffer.readableCount >= 4 else { return nil }
            length = Int(buffer[2]) << 8 | Int(buffer[3])
            headerLength = 4
        } else if length == 127 {
            guard buffer.readableCount >= 10 else { return nil }
            guard buffer[2] & 0x80 == 0 else { throw WebSocketError(CloseCode.protocolError, "64-bit length with the top bit set") }
            var value: UInt64 = 0
            for i in 2..<10 { value = value << 8 | UInt64(buffer[i]) }
            guard value <= UInt64(Int32.max) else { throw WebSocketError(CloseCode.messageTooBig, "frame too large") }
            length = Int(value)
            headerLength = 10
        }
        guard length <= maxPayload else { throw WebSocketError(CloseCode.messageTooBig, "message above \(maxPayload) bytes") }
        let total = headerLength + 4 + length
        guard buffer.readableCount >= total else { return nil }
        let mask = (buffer[headerLength], buffer[headerLength + 1], buffer[headerLength + 2], buffer[headerLength + 3])
        buffer.skip(headerLength + 4)
        var payload = buffer.read(length)
        payload.withUnsafeMutableBufferPointer { p in
            let keys = [mask.0, mask.1, mask.2, mask.3]
            for i in 0..<p.count { p[i] ^= keys[i & 3] }
        }
        return WebSocketFrame(fin: fin, opcode: opcode, payload: payload, compressed: compressed)
    }
}
