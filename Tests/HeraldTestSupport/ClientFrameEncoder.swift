// Builds WebSocket frames as a client sends them (masked, RFC 6455 §5.3), including the
// malformed ones a server must refuse, for decoder tests and WebSocket test clients.

public enum ClientFrameEncoder {
    /// A frame with `opcode` (raw, so reserved opcodes can be sent) and `payload`, masked with
    /// `mask` unless it is nil. `rsv` is OR-ed into the first byte (0x40, 0x20, 0x10).
    public static func frame(
        opcode: UInt8, _ payload: [UInt8], fin: Bool = true,
        mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D], rsv: UInt8 = 0
    ) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | rsv | opcode]
        let maskBit: UInt8 = mask == nil ? 0 : 0x80
        let length = payload.count
        if length < 126 {
            out.append(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            out.append(maskBit | 126)
            out += [UInt8(length >> 8), UInt8(length & 0xFF)]
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((length >> shift) & 0xFF)) }
        }
        guard let mask else { return out + payload }
        out += mask
        for (i, byte) in payload.enumerated() { out.append(byte ^ mask[i & 3]) }
        return out
    }

    public static func text(_ text: String, fin: Bool = true) -> [UInt8] { frame(opcode: 0x1, Array(text.utf8), fin: fin) }
    public static func binary(_ bytes: [UInt8], fin: Bool = true) -> [UInt8] { frame(opcode: 0x2, bytes, fin: fin) }
    public static func continuation(_ bytes: [UInt8], fin: Bool = true) -> [UInt8] { frame(opcode: 0x0, bytes, fin: fin) }
    public static func ping(_ bytes: [UInt8] = []) -> [UInt8] { frame(opcode: 0x9, bytes) }
    public static func pong(_ bytes: [UInt8] = []) -> [UInt8] { frame(opcode: 0xA, bytes) }

    /// A close frame with `code` and `reason`, or an empty one when `code` is nil.
    public static func close(code: UInt16?, reason: String = "") -> [UInt8] {
        guard let code else { return frame(opcode: 0x8, []) }
        return frame(opcode: 0x8, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8))
    }
}
