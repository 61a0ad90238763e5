// The contract between a connection that left HTTP behind (a WebSocket after its upgrade, or
// a Server-Sent Events stream) and what the API layer runs on it.

/// What runs on top of an upgraded connection or an event stream (the subscriber session,
/// the echo endpoint, a refusal); called on the connection's loop only.
public protocol SessionApp: AnyObject {
    /// A complete text or binary message from a WebSocket client (never called for an event
    /// stream, which is one-way, nor after Herald sent its close frame).
    func received(_ message: WebSocketEvent)
    /// Everything queued to the client has been written (lossless senders resume here).
    func drained()
    /// The connection is gone (closed by either side); release everything.
    func closed()
}
