// How a client receives what Herald sends it, and the one place where an answer or a pub/sub
// delivery is put in that form (a stream entry's form is chosen beside its cache, in
// Streams/StreamEntry.swift). Connections ask here; nothing else picks a form.

/// The form a client's messages take: WebSocket frames, or Server-Sent Events.
public enum WireForm: Sendable {
    case webSocket
    case eventStream

    /// A JSON answer or notice: a text frame, or an event.
    public func message(_ json: [UInt8]) -> [UInt8] {
        switch self {
        case .webSocket: FrameEncoder.encode(.text, json)
        case .eventStream: EventStream.event(data: json)
        }
    }

    /// A message for many clients, encoded once for every client that takes this form.
    public func message(_ shared: SharedMessage) -> Chunk {
        switch self {
        case .webSocket: shared.frame
        case .eventStream: shared.event
        }
    }

    /// A pub/sub delivery as its JSON envelope or its bare payload, encoded once for every
    /// subscriber that takes this form.
    public func delivery(_ delivery: Delivery, raw: Bool) -> Chunk {
        switch self {
        case .webSocket: raw ? delivery.rawFrame : delivery.jsonFrame
        case .eventStream: raw ? delivery.rawEvent : delivery.jsonEvent
        }
    }
}
