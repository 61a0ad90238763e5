// `GET /subscribe`: validates the query and the upgrade, then hands the socket to a
// `SubscriberSession` with the subscriptions the query asked for.

enum SubscribeAPI {
    /// How deliveries are written to the client.
    enum Format: String {
        /// JSON envelopes (`{"type":"message",...}`).
        case json
        /// Bare payloads: text frames for UTF-8, binary frames otherwise.
        case raw
    }

    static func open(_ request: HTTPRequest, _ responder: Responder) {
        guard WebSocketHandshake.isUpgrade(request) else {
            responder.fail(.upgradeRequired("GET /subscribe needs a WebSocket upgrade (Upgrade: websocket)"))
            return
        }
        guard let query = PercentDecoding.query(request.query) else {
            responder.fail(.badRequest("the query string is badly encoded"))
            return
        }
        var format = Format.json
        var initial: [SubscriptionKind: [String]] = [:]
        for (name, value) in query {
            if name == "format" {
                guard let f = Format(rawValue: value) else {
                    responder.fail(.badRequest("format must be json or raw, not '\(value)'"))
                    return
                }
                format = f
            } else if let kind = SubscriptionKind(rawValue: name) {
                guard !value.isEmpty else {
                    responder.fail(.badRequest("\(name) must not be empty"))
                    return
                }
                if !(initial[kind]?.contains(value) ?? false) { initial[kind, default: []].append(value) }
            }
        }
        let accepted: HTTPResponse
        do {
            accepted = try WebSocketHandshake.accept(request)
        } catch {
            responder.fail(error)
            return
        }
        let session = SubscriberSession(connection: responder.connection, format: format)
        guard responder.upgrade(accepted, to: session) else {
            responder.fail(.badRequest("a WebSocket upgrade cannot follow pipelined requests still waiting for answers"))
            return
        }
        for kind in SubscriptionKind.allCases {
            if let names = initial[kind] { session.subscribe(kind, names, id: nil) }
        }
    }
}
