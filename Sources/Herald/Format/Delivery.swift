// One message from Redis on its way to local subscribers. Each wire form (JSON or raw, as a
// WebSocket frame or a Server-Sent Event, compressed or not) is encoded at most once, on first
// use, and the same chunk is queued to everyone who wants that form.
import FoundationEssentials

/// A message fanned out to local subscribers; confined to its loop.
public final class Delivery {
    public let kind: SubscriptionKind
    public let channel: [UInt8]
    /// The matching pattern, for `.pattern` deliveries.
    public let pattern: [UInt8]?
    public let payload: [UInt8]

    public init(kind: SubscriptionKind, channel: [UInt8], pattern: [UInt8]? = nil, payload: [UInt8]) {
        self.kind = kind
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }

    /// The JSON envelope as a WebSocket text frame.
    public private(set) lazy var jsonFrame = Chunk.of(FrameEncoder.encode(.text, Envelope.delivery(self)))

    /// The bare payload as a WebSocket frame: text when valid UTF-8, else binary.
    public private(set) lazy var rawFrame = Chunk.of(FrameEncoder.encode(UTF8Validation.isValid(payload) ? .text : .binary, payload))

    /// Frames compressed for permessage-deflate, keyed by window bits and form (`bits << 1 | raw`);
    /// built on first use.
    private var deflatedFrames: [(key: Int, frame: Chunk)] = []

    /// The JSON envelope or bare payload as a frame for a subscriber that agreed to
    /// permessage-deflate with a window of `windowBits`: compressed once for every such
    /// subscriber (Herald keeps no context between messages, so the bytes depend on the message
    /// and window alone), or the plain frame when the message is under `--compression-min`.
    public func deflatedFrame(raw: Bool, windowBits: Int, compressor: MessageCompressor) -> Chunk {
        let plain = raw ? rawFrame : jsonFrame
        let key = windowBits << 1 | (raw ? 1 : 0)
        for entry in deflatedFrames where entry.key == key { return entry.frame }
        let headerLength = FrameEncoder.headerLength(ofFrame: plain)
        guard compressor.wants(plain.count - headerLength) else { return plain }
        let opcode: WebSocketOpcode = plain.base.load(as: UInt8.self) & 0x0F == WebSocketOpcode.binary.rawValue ? .binary : .text
        let message = UnsafeRawBufferPointer(start: plain.base + headerLength, count: plain.count - headerLength)
        let frame = compressor.frame(opcode, message, windowBits: windowBits) ?? plain
        deflatedFrames.append((key, frame))
        return frame
    }

    /// The JSON envelope as a Server-Sent Event.
    public private(set) lazy var jsonEvent = Chunk.of(EventStream.event(data: Envelope.delivery(self)))

    /// The bare payload as a Server-Sent Event (base64 in a `binary` event when not UTF-8,
    /// which the format cannot carry).
    public private(set) lazy var rawEvent =
        UTF8Validation.isValid(payload)
        ? Chunk.of(EventStream.event(data: payload))
        : Chunk.of(EventStream.event(data: Array(Data(payload).base64EncodedString().utf8), event: "binary"))
}
