// A JSON message that goes to many clients at once (a watched key's new value): each wire form
// (a WebSocket text frame, a Server-Sent Event) is encoded at most once, on first use, and the
// same chunk is queued to every client that takes that form, as a Delivery's is.

/// One message for many clients; confined to its loop.
public final class SharedMessage {
    public let json: [UInt8]

    public init(_ json: [UInt8]) { self.json = json }

    /// The message as a WebSocket text frame.
    public private(set) lazy var frame = Chunk.of(FrameEncoder.encode(.text, json))

    /// The message as a Server-Sent Event.
    public private(set) lazy var event = Chunk.of(EventStream.event(data: json))
}
