// What the API layer needs of a client connection, declared here and implemented by the
// connection (Server/), so dependencies run one way: Server -> API -> Streams/Queues/Hub.

/// A connection a request arrived on: where its answer goes (in request order), and what it
/// can turn into. Confined to its loop.
protocol ClientExchange: SessionClient {
    /// Accepted beyond `--max-connections`: its first request is refused.
    var overLimit: Bool { get }
    /// Stores `slot`'s answer and sends every answer now in order.
    func fill(_ slot: ResponseSlot, _ response: HTTPResponse)
    /// Switches to WebSocket after the 101 answer; false when earlier answers are pending.
    func upgrade(_ slot: ResponseSlot, response: HTTPResponse, app: SessionApp) -> Bool
    /// Turns `slot`'s answer into a Server-Sent Events stream; false when earlier answers are
    /// pending.
    func startEventStream(_ slot: ResponseSlot, app: SessionApp) -> Bool
    /// Looks at the socket now for a client that left; closes the connection if so.
    func checkPeer()
    /// The peer's address (`203.0.113.7:51234`), for the authorization hook.
    var remoteAddress: String { get }
}

/// A client a session runs on (a WebSocket or an event stream); confined to its loop.
protocol SessionClient: StreamClient, QueueClient, WatchClient {
    /// A pub/sub delivery in the client's wire form (JSON envelope or raw): dropped, and
    /// counted, when the client's queue is full.
    func deliver(_ delivery: Delivery, raw: Bool)
    /// An encoded frame or event (a control frame, an answer): never dropped.
    func send(_ frame: [UInt8])
    /// A text or binary message, compressed when the client agreed to permessage-deflate and
    /// it is worth it: never dropped.
    func sendData(_ opcode: WebSocketOpcode, _ payload: [UInt8])
    /// Starts the WebSocket closing handshake with `code`.
    func closeWebSocket(code: UInt16, reason: String)
    /// Ends the session from Herald's side: a WebSocket starts its closing handshake with
    /// `code` and `reason`; an event stream (which has no code) ends once what is queued is
    /// written.
    func end(code: UInt16, reason: String)
}

extension SessionClient {
    /// A client that is only ever a WebSocket ends by closing.
    func end(code: UInt16, reason: String) { closeWebSocket(code: code, reason: reason) }
    /// A client without a shared form encodes the message for itself.
    func sendMessage(_ message: SharedMessage) { sendMessage(message.json) }

    /// A client that never compresses sends every message as a plain frame.
    func sendData(_ opcode: WebSocketOpcode, _ payload: [UInt8]) { send(FrameEncoder.encode(opcode, payload)) }
}
