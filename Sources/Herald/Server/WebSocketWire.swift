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
    /// Window bits of what Herald sends compressed (permessage-deflate), nil when not agreed.
    let deflateWindowBits: Int?

    /// `deflate`: the agreed permessage-deflate parameters. A client that keeps its compression
    /// context between messages gets an inflater of its own (zlib's state allocated on its first
    /// compressed message); one that does not shares `sharedInflater` with the loop.
    init(
        app: SessionApp, maxMessage: Int, pingIntervalMs: Int64, deflate: DeflateParameters? = nil,
        sharedInflater: MessageInflater? = nil
    ) {
        self.app = app
        decoder = FrameDecoder(maxPayload: maxMessage, allowsCompression: deflate != nil)
        let inflater = deflate.map { agreed in
            if agreed.clientNoContextTakeover, let sharedInflater { return sharedInflater }
            return MessageInflater(windowBits: agreed.clientMaxWindowBits, contextTakeover: true)
        }
        assembler = MessageAssembler(maxMessage: maxMessage, inflater: inflater)
        control = WebSocketControl(pingIntervalMs: pingIntervalMs)
        deflateWindowBits = deflate?.serverMaxWindowBits
    }
}
