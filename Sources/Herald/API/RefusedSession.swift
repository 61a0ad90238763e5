// A WebSocket that is accepted only to be told why it cannot stay: an error message, then a
// close frame with a code (1008 for auth, 1013 over the connection limit).

final class RefusedSession: SessionApp {
    private var connection: (any SessionClient)?
    private let code: UInt16
    private let error: [UInt8]

    init(connection: any SessionClient, code: UInt16, error: [UInt8]) {
        self.connection = connection
        self.code = code
        self.error = error
    }

    func start() {
        connection?.send(FrameEncoder.encode(.text, error))
        connection?.closeWebSocket(code: code, reason: code == CloseCode.tryAgainLater ? "too many connections" : "policy violation")
    }

    func received(_ message: WebSocketEvent) {}
    func drained() {}
    func closed() { connection = nil }
}
