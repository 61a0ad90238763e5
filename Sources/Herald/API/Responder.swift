// What a request handler holds to answer its request: now, after Redis replies, or by turning
// the connection into a WebSocket or a Server-Sent Events stream.

/// Hands one request's answer back to its connection, now or after Redis replies.
public struct Responder {
    let connection: any ClientExchange
    let slot: ResponseSlot

    public func respond(_ response: HTTPResponse) {
        connection.fill(slot, response)
    }

    public func fail(_ error: HTTPError) {
        if error.closesConnection { slot.keepAlive = false }
        respond(.error(error))
    }

    /// Whether the client will never read this answer: it left (looked for on the socket now),
    /// or the connection closes before this answer.
    public var isAbandoned: Bool {
        connection.checkPeer()
        return slot.abandoned
    }

    /// Runs `action` if the client goes before this request is answered (to stop work for it).
    public func onAbandon(_ action: @escaping () -> Void) {
        if slot.abandoned { action() } else { slot.onAbandon = action }
    }

    /// Completes a WebSocket upgrade; false when earlier pipelined answers are still pending.
    public func upgrade(_ response: HTTPResponse, to app: SessionApp) -> Bool {
        connection.upgrade(slot, response: response, app: app)
    }

    /// Answers with a Server-Sent Events stream driven by `app`; false when earlier pipelined
    /// answers are still pending.
    public func startEventStream(_ app: SessionApp) -> Bool {
        connection.startEventStream(slot, app: app)
    }
}
