// The state of a connection after its WebSocket upgrade: the frame decoder and message
// assembler for what the client sends, the close and ping state machine, and the app the
// messages go to. What it does with them is in `ClientConnection+WebSocket.swift`.

/// WebSocket state of one client connection; confined to its loop.
final class WebSocketWire {
    /// Runs on the connection; nil once the connection closed (which breaks the app's
    /// reference back to its connection).
    var app: SessionApp?
    let decoder: FrameDecoder
    var assembler: MessageAssembler
    /// The closing handshake and keep-alive pings.
    var control: WebSocketControl
    /// Deliveries dropped because this client's queue was full, not yet reported to it.
    var droppedUnreported = 0

    init(app: SessionApp, maxMessage: Int, pingIntervalMs: Int64) {
        self.app = app
        decoder = FrameDecoder(maxPayload: maxMessage)
        assembler = MessageAssembler(maxMessage: maxMessage)
        control = WebSocketControl(pingIntervalMs: pingIntervalMs)
    }
}
