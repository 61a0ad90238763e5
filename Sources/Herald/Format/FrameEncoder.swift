// Encodes server frames (never masked, RFC 6455 §5.1), sans I/O.

public enum FrameEncoder {
    /// The first header byte's RSV1 bit: the message is compressed (RFC 7692 §6).
    public static let rsv1: UInt8 = 0x40

    /// One complete frame carrying `payload`.
    public static func encode<C: Collection>(_ opcode: WebSocketOpcode, _ payload: C, fin: Bool = true) -> [UInt8] where C.Element == UInt8 {
        var out = [UInt8]()
        out.reserveCapacity(payload.count + 10)
        writeHeader(opcode, length: payload.count, fin: fin, into: &out)
        out.append(contentsOf: payload)
        return out
    }

    /// Writes a frame header for a payload of `length` bytes.
    public static func writeHeader(_ opcode: WebSocketOpcode, length: Int, fin: Bool = true, into out: inout [UInt8]) {
        out.append((fin ? 0x80 : 0) | opcode.rawValue)
        if length < 126 {
            out.append(UInt8(length))
        } else if length <= 0xFFFF {
            out.append(126)
            out.append(UInt8(length >> 8))
            out.append(UInt8(length & 0xFF))
        } else {
            out.append(127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8((length >> shift) & 0xFF)) }
        }
    }

    /// The header length of an encoded server frame (2, 4 or 10 bytes, from its length byte).
    public static func headerLength(ofFrame frame: Chunk) -> Int {
        switch frame.base.load(fromByteOffset: 1, as: UInt8.self) & 0x7F {
        case 126: 4
        case 127: 10
        default: 2
        }
    }

    /// A close frame with a status code and a UTF-8 reason (cut to fit the 125-byte limit).
    public static func close(code: UInt16, reason: String = "") -> [UInt8] {
        var payload: [UInt8] = [UInt8(code >> 8), UInt8(code & 0xFF)]
        var reasonBytes = Array(reason.utf8.prefix(123))
        while !UTF8Validation.isValid(reasonBytes) { reasonBytes.removeLast() }
        payload.append(contentsOf: reasonBytes)
        return encode(.close, payload)
    }
}
