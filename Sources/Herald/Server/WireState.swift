// What a client connection speaks now, with the state only that protocol has: a connection
// starts as HTTP and may become a WebSocket (after a 101) or an event stream (a 200 that
// never ends), never back.

/// The protocol a connection speaks and its state; confined to the connection's loop.
enum WireState {
    case http(HTTPWire)
    case webSocket(WebSocketWire)
    case eventStream(EventStreamWire)

    var kind: ClientConnection.Wire {
        switch self {
        case .http: .http
        case .webSocket: .webSocket
        case .eventStream: .eventStream
        }
    }

    /// The app on an upgraded connection (none on HTTP, none once closed).
    var app: SessionApp? {
        switch self {
        case .http: nil
        case .webSocket(let ws): ws.app
        case .eventStream(let es): es.app
        }
    }

    /// Releases the app (the connection closed) and returns it, to be told.
    func takeApp() -> SessionApp? {
        switch self {
        case .http:
            return nil
        case .webSocket(let ws):
            defer { ws.app = nil }
            return ws.app
        case .eventStream(let es):
            defer { es.app = nil }
            return es.app
        }
    }

    /// Takes the count of deliveries dropped and not yet reported to the client, if it may
    /// still be told (not after Herald's WebSocket close frame).
    func takeDroppedReport() -> Int {
        switch self {
        case .http:
            return 0
        case .webSocket(let ws):
            let count = ws.droppedUnreported
            guard count > 0, !ws.control.closeSent else { return 0 }
            ws.droppedUnreported = 0
            return count
        case .eventStream(let es):
            let count = es.droppedUnreported
            guard count > 0 else { return 0 }
            es.droppedUnreported = 0
            return count
        }
    }
}
