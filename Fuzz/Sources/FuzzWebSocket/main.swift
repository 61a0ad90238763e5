// Fuzz target: WebSocket frame decoding and message assembly (FrameDecoder, MessageAssembler)
// as ClientConnection drives them after an upgrade, with or without permessage-deflate (then
// RSV1 frames are inflated under the message cap, with context kept between messages).
//
// The input is the byte stream a client sends after the 101. It is decoded all at once and in
// pseudo-random pieces (the cuts depend only on the input); both must yield the same events and
// the same close code. Then every event goes where the connection sends it: pings are answered
// with a pong, closes echoed, text messages parsed as control-message JSON (and answered with
// the `id` copied), and protocol errors turned into a close frame. Every frame Herald would send
// back is decoded again (masked as a client would) and must carry what was encoded.
import FuzzSupport
import Herald

struct Outcome: Equatable {
    var events: [WebSocketEvent] = []
    /// Close code of the protocol error that ended the stream, if any.
    var failure: UInt16?
    var leftover = 0
}

func decode(_ pieces: [ArraySlice<UInt8>], maxMessage: Int, compression: Bool) -> (Outcome, WebSocketError?) {
    let decoder = FrameDecoder(maxPayload: maxMessage, allowsCompression: compression)
    var assembler = MessageAssembler(maxMessage: maxMessage, inflater: compression ? MessageInflater(contextTakeover: true) : nil)
    var buffer = ByteBuffer()
    var outcome = Outcome()
    for piece in pieces {
        buffer.append(Array(piece))
        do {
            while let frame = try decoder.next(&buffer) {
                invariant(frame.payload.count <= maxMessage, "frame payload \(frame.payload.count) above \(maxMessage)")
                guard let event = try assembler.receive(frame) else { continue }
                if case .text(let p) = event { invariant(p.count <= maxMessage, "inflated text of \(p.count) bytes above \(maxMessage)") }
                if case .binary(let p) = event { invariant(p.count <= maxMessage, "inflated binary of \(p.count) bytes above \(maxMessage)") }
                outcome.events.append(event)
                // The connection stops reading once the peer closed.
                if case .close = event { outcome.leftover = -1; return (outcome, nil) }
            }
        } catch {
            outcome.failure = error.code
            return (outcome, error)
        }
        buffer.reclaim()
    }
    outcome.leftover = buffer.readableCount
    return (outcome, nil)
}

/// A server frame as a client would send it: mask bit set and `key` applied.
func masked(_ serverFrame: [UInt8], key: [UInt8]) -> [UInt8] {
    var headerLength = 2
    switch serverFrame[1] & 0x7F {
    case 126: headerLength = 4
    case 127: headerLength = 10
    default: break
    }
    var out = Array(serverFrame[..<headerLength])
    invariant(out[1] & 0x80 == 0, "server frame is masked")
    out[1] |= 0x80
    out += key
    for (i, b) in serverFrame[headerLength...].enumerated() { out.append(b ^ key[i & 3]) }
    return out
}

/// Decodes one frame Herald would send and returns the event a peer sees.
func reread(_ serverFrame: [UInt8], key: [UInt8]) -> WebSocketEvent? {
    var buffer = ByteBuffer(masked(serverFrame, key: key))
    var assembler = MessageAssembler(maxMessage: 1 << 30)
    do {
        guard let frame = try FrameDecoder(maxPayload: 1 << 30).next(&buffer) else {
            invariant(false, "a frame Herald sends is incomplete: \(describe(serverFrame))")
            return nil
        }
        invariant(buffer.isEmpty, "a frame Herald sends has \(buffer.readableCount) bytes too many")
        return try assembler.receive(frame)
    } catch {
        invariant(false, "a frame Herald sends is refused (\(error.code) \(error.reason)): \(describe(serverFrame))")
        return nil
    }
}

/// The answer SubscriberSession gives a text message: parsed as JSON, the `id` copied back.
func controlAnswer(_ payload: [UInt8]) -> [UInt8] {
    let json: JSONValue
    do {
        json = try JSONValue.parse(payload)
    } catch {
        return Envelope.error(code: "bad_json", message: error.description)
    }
    let id = json["id"]
    let op = json["op"]?.stringValue ?? ""
    let reply = Envelope.answer(op.isEmpty ? "error" : op, id: id) { o in
        if let names = json["channels"]?.arrayValue?.compactMap(\.stringValue) { o.field("names", strings: names) }
    }
    guard let back = try? JSONValue.parse(reply) else {
        invariant(false, "answer is not JSON: \(describe(reply))")
        return reply
    }
    invariant(back["id"] == id, "the id does not survive the answer: sent \(String(describing: id)), got \(String(describing: back["id"]))")
    return reply
}

/// What ClientConnection and SubscriberSession send back for `event`.
func answer(_ event: WebSocketEvent, key: [UInt8]) {
    switch event {
    case .ping(let payload):
        invariant(payload.count <= 125, "ping payload of \(payload.count) bytes")
        invariant(reread(FrameEncoder.encode(.pong, payload), key: key) == .pong(payload), "pong does not echo the ping")
    case .pong:
        break
    case .close(let code, let reason):
        invariant(UTF8Validation.isValid(Array(reason.utf8)), "close reason not UTF-8")
        if let code {
            guard case .close(let echoed, _)? = reread(FrameEncoder.close(code: code), key: key) else {
                invariant(false, "close echo is not a close frame"); return
            }
            invariant(echoed == code, "close echo carries \(String(describing: echoed)), not \(code)")
        }
    case .binary(let payload):
        invariant(payload.count <= 1 << 30, "oversize binary")
        let reply = Envelope.error(code: "binary_not_supported", message: "binary frames are not supported")
        invariant(reread(FrameEncoder.encode(.text, reply), key: key) == .text(reply), "text answer does not round-trip")
    case .text(let payload):
        invariant(UTF8Validation.isValid(payload), "text message that is not UTF-8 reached the app")
        let reply = controlAnswer(payload)
        invariant(reread(FrameEncoder.encode(.text, reply), key: key) == .text(reply), "text answer does not round-trip")
    }
}

runFuzzer { data, size in
    let input = bytes(data, size)
    var random = InputRandom(input)
    let maxMessage = [125, 1000, 1 << 20][random.below(3)]
    let key = (0..<4).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    // Compression on for most inputs: the seeds with RSV1 frames then reach the inflater.
    let compression = random.below(4) != 0

    let (whole, error) = decode([input[...]], maxMessage: maxMessage, compression: compression)
    let maxPiece = [1, 2, 5, 64, 1500][random.below(5)]
    let (cut, _) = decode(random.pieces(input, maxPiece: maxPiece), maxMessage: maxMessage, compression: compression)
    invariant(
        whole == cut,
        """
        whole and cut (pieces of up to \(maxPiece) bytes) decodes disagree (max message \(maxMessage)):
          whole: \(whole.events.count) events, failure \(String(describing: whole.failure)), leftover \(whole.leftover)
          cut:   \(cut.events.count) events, failure \(String(describing: cut.failure)), leftover \(cut.leftover)
        """)
    for event in whole.events { answer(event, key: key) }
    if let error {
        let closeFrame = FrameEncoder.close(code: error.code, reason: error.reason)
        guard case .close(let code, let reason)? = reread(closeFrame, key: key) else {
            invariant(false, "the close frame for a protocol error is not a close frame"); return 0
        }
        invariant(code == error.code, "close frame carries \(String(describing: code)) instead of \(error.code)")
        invariant(error.reason.utf8.starts(with: reason.utf8), "close reason is not a prefix of the error reason")
    }
    return 0
}
