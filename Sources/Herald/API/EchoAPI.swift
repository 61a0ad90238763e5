// `GET /echo` (test only, `--echo`): echoes every message, for the Autobahn conformance cases.

enum EchoAPI {
    static func open(_ request: HTTPRequest, _ responder: Responder) {
        let accepted: HTTPResponse
        do {
            accepted = try WebSocketHandshake.accept(request)
        } catch {
            responder.fail(error)
            return
        }
        if !responder.upgrade(accepted, to: EchoSession(connection: responder.connection)) {
            responder.fail(.badRequest("a WebSocket upgrade cannot follow pipelined requests still waiting for answers"))
        }
    }
}

/// Sends each message back as it came.
final class EchoSession: SessionApp {
    private var connection: (any SessionClient)?

    init(connection: any SessionClient) { self.connection = connection }

    func received(_ message: WebSocketEvent) {
        switch message {
        case .text(let payload): connection?.sendData(.text, payload)
        case .binary(let payload): connection?.sendData(.binary, payload)
        default: break
        }
    }

    func drained() {}

    func closed() { connection = nil }
}
