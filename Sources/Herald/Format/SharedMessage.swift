// A JSON message that goes to many clients at once (a watched key's new value): each wire form
// (a WebSocket text frame, a Server-Sent Event) is encoded at most once, on first use, and the
// same chunk is queued to every client that takes that form, as a Delivery's is.

/// One message for many clients; confined to its loop.
public final class SharedMessage {
    public let json: [UInt8]

    public init(_ json: [UInt8]) { self.json = json }

    /// The message as a WebSocket text frame.
    public private(set) lazy var frame = Chunk.of(FrameEncoder.encode(.text, json))

    /// The message as a WebSocket text frame compressed with `windowBits` (permessage-deflate),
    /// made once per window size for every client that agreed to it; the plain frame when it is
    /// under `--compression-min`.
    public func deflatedFrame(windowBits: Int, compressor: MessageCompressor) -> Chunk {
        for entry in deflatedFrames where entry.windowBits == windowBits { return entry.frame }
        let made = compressor.wants(json.count) ? compressor.frame(.text, json, windowBits: windowBits) : frame
        deflatedFrames.append((windowBits, made))
        return made
    }

    private var deflatedFrames: [(windowBits: Int, frame: Chunk)] = []

    /// The message as a Server-Sent Event.
    public private(set) lazy var event = Chunk.of(EventStream.event(data: json))
}
