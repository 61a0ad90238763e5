// The client side of RFC 6455 framing, sans I/O: server frames are never masked (§5.1), so
// Herald's FrameDecoder (which insists on masks, as a server must) is not the tool here; client
// frames must be masked, which Herald's FrameEncoder (a server's) never does.
import Herald

enum ClientFrames {
    /// One server frame's header: where its payload starts and how long it is.
    struct Header {
        let opcode: UInt8
        /// RSV1: a permessage-deflate compressed message.
        let compressed: Bool
        let headerLength: Int
        let payloadLength: Int
    }

    /// The header of the frame at the start of `bytes`, or nil until it is complete.
    @inline(__always)
    static func header(_ bytes: UnsafeRawBufferPointer) -> Header? {
        guard bytes.count >= 2 else { return nil }
        let opcode = bytes[0] & 0x0F
        let compressed = bytes[0] & 0x40 != 0
        let short = Int(bytes[1] & 0x7F)
        switch short {
        case 126:
            guard bytes.count >= 4 else { return nil }
            return Header(opcode: opcode, compressed: compressed, headerLength: 4, payloadLength: Int(bytes[2]) << 8 | Int(bytes[3]))
        case 127:
            guard bytes.count >= 10 else { return nil }
            var length = 0
            for i in 2..<10 { length = length << 8 | Int(bytes[i]) }
            return Header(opcode: opcode, compressed: compressed, headerLength: 10, payloadLength: length)
        default:
            return Header(opcode: opcode, compressed: compressed, headerLength: 2, payloadLength: short)
        }
    }

    /// A masked client frame (control frames only here: payloads stay under 126 bytes).
    static func masked(_ opcode: WebSocketOpcode, _ payload: UnsafeRawBufferPointer) -> [UInt8] {
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        var out: [UInt8] = [0x80 | opcode.rawValue, 0x80 | UInt8(min(payload.count, 125))]
        out.append(contentsOf: mask)
        for i in 0..<min(payload.count, 125) { out.append(payload[i] ^ mask[i & 3]) }
        return out
    }

    /// The upgrade request for `path`; the key is RFC 6455's sample (the bench need not be
    /// unpredictable) and the answer's `Sec-WebSocket-Accept` is not checked.
    static func upgradeRequest(path: String, host: String, compression: Bool = false) -> [UInt8] {
        let offer = compression ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : ""
        return Array(
            """
            GET \(path) HTTP/1.1\r
            Host: \(host)\r
            Upgrade: websocket\r
            Connection: Upgrade\r
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
            Sec-WebSocket-Version: 13\r
            \(offer)\r

            """.utf8)
    }
}
