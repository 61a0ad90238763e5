// A WebSocket frame as a value (RFC 6455 §5.2), with the opcodes and close codes Herald uses.

public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// Close codes of RFC 6455 §7.4.1 that Herald sends.
public enum CloseCode {
    public static let normal: UInt16 = 1000
    public static let goingAway: UInt16 = 1001
    public static let protocolError: UInt16 = 1002
    public static let invalidPayload: UInt16 = 1007
    public static let policyViolation: UInt16 = 1008
    public static let messageTooBig: UInt16 = 1009
    public static let internalError: UInt16 = 1011
    public static let tryAgainLater: UInt16 = 1013
}

/// One decoded frame; the payload is already unmasked.
public struct WebSocketFrame: Equatable, Sendable {
    public var fin: Bool
    public var opcode: WebSocketOpcode
    public var payload: [UInt8]
    /// RSV1: the first frame of a permessage-deflate compressed message (RFC 7692 §6).
    public var compressed: Bool

    public init(fin: Bool = true, opcode: WebSocketOpcode, payload: [UInt8] = [], compressed: Bool = false) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
        self.compressed = compressed
    }
}

/// A protocol violation by the peer: the connection closes with `code`.
public struct WebSocketError: Error, Equatable, Sendable {
    public let code: UInt16
    public let reason: String

    public init(_ code: UInt16, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}
