// Turns frames into messages (RFC 6455 §5.4): joins fragments, lets control frames interleave,
// inflates compressed messages (RFC 7692 §7.2.2), validates text as UTF-8 (§8.1) and close
// payloads (§5.5.1, §7.4).

/// What a client said, once a frame completes something.
public enum WebSocketEvent: Equatable, Sendable {
    case text([UInt8])
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// The peer closed; `code` is nil when the close frame had no payload.
    case close(code: UInt16?, reason: String)
}

/// Joins fragmented messages. Confined to its connection.
public struct MessageAssembler {
    /// Largest reassembled message, bytes; larger closes with 1009. It bounds both what a
    /// compressed message takes on the wire and what it inflates to.
    public let maxMessage: Int
    /// Inflates compressed messages, when permessage-deflate was agreed.
    private var inflater: MessageInflater?
    private var fragmentOpcode: WebSocketOpcode?
    /// The message being joined is compressed (its first frame had RSV1).
    private var fragmentsCompressed = false
    private var fragments: [UInt8] = []

    public init(maxMessage: Int, inflater: MessageInflater? = nil) {
        self.maxMessage = maxMessage
        self.inflater = inflater
    }

    public mutating func receive(_ frame: WebSocketFrame) throws(WebSocketError) -> WebSocketEvent? {
        switch frame.opcode {
        case .ping: return .ping(frame.payload)
        case .pong: return .pong(frame.payload)
        case .close: return try Self.closeEvent(frame.payload)
        case .text, .binary:
            guard fragmentOpcode == nil else { throw WebSocketError(CloseCode.protocolError, "new message before the previous one ended") }
            if frame.fin { return try message(frame.opcode, frame.payload, compressed: frame.compressed) }
            fragmentOpcode = frame.opcode
            fragmentsCompressed = frame.compressed
            fragments = frame.payload
            return nil
        case .continuation:
            guard let opcode = fragmentOpcode else { throw WebSocketError(CloseCode.protocolError, "continuation without a message") }
            guard fragments.count + frame.payload.count <= maxMessage else {
                throw WebSocketError(CloseCode.messageTooBig, "message above \(maxMessage) bytes")
            }
            fragments.append(contentsOf: frame.payload)
            guard frame.fin else { return nil }
            let payload = fragments
            fragments = []
            fragmentOpcode = nil
            return try message(opcode, payload, compressed: fragmentsCompressed)
        }
    }

    /// Drops what is held for a connection that closed: a partial message, and the inflater
    /// (freeing zlib's state unless the loop shares it).
    public mutating func release() {
        fragments = []
        fragmentOpcode = nil
        inflater = nil
    }

    private func message(_ opcode: WebSocketOpcode, _ payload: [UInt8], compressed: Bool) throws(WebSocketError) -> WebSocketEvent {
        var payload = payload
        if compressed {
            // The decoder lets RSV1 through only when permessage-deflate was agreed.
            guard let inflater else { throw WebSocketError(CloseCode.protocolError, "reserved bits set without an extension") }
            payload = try inflater.inflate(payload, limit: maxMessage)
        }
        if opcode == .binary { return .binary(payload) }
        guard UTF8Validation.isValid(payload) else { throw WebSocketError(CloseCode.invalidPayload, "text message is not valid UTF-8") }
        return .text(payload)
    }

    private static func closeEvent(_ payload: [UInt8]) throws(WebSocketError) -> WebSocketEvent {
        if payload.isEmpty { return .close(code: nil, reason: "") }
        guard payload.count >= 2 else { throw WebSocketError(CloseCode.protocolError, "close payload of one byte") }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        // §7.4 and IANA's close code registry: the registered codes a peer may send (1012
        // Service Restart, 1013 Try Again Later, 1014 Bad Gateway included) and the library and
        // application ranges. 1004-1006 and 1015 are reserved, never sent; the rest unassigned.
        let valid = (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
        guard valid else { throw WebSocketError(CloseCode.protocolError, "invalid close code \(code)") }
        let reason = payload.dropFirst(2)
        guard UTF8Validation.isValid(reason) else { throw WebSocketError(CloseCode.invalidPayload, "close reason is not valid UTF-8") }
        return .close(code: code, reason: String(decoding: reason, as: UTF8.self))
    }
}
