// `GET /presence/{channel}`: who is in a channel, across every Herald on this Redis.

enum PresenceAPI {
    /// `{"channel":..,"clients":n,"users":n,"members":[..]}`; needs the subscribe grant. A
    /// channel no one is in answers zero members, not 404.
    static func read(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ presence: PresenceService) {
        guard
            let target = KeyedRequest(
                request, responder, prefix: "/presence/", noun: "channel", access: .read,
                verb: "reading the presence of", caller: caller, isKey: false)
        else { return }
        presence.read(target.name.text) { result in
            switch result {
            case .success(let snapshot): responder.respond(.jsonObject { snapshot.write(&$0) })
            case .failure(let error): responder.fail(error)
            }
        }
    }
}

/// The presence part of a subscribe request's query: `presence=true` (every `channel=` of the
/// connection joins) and `user=` (a name the client gives itself: used only when the
/// credential names no one, and trusted by nothing).
struct PresenceQuery {
    var enabled = false
    var user: String?

    init(_ query: [QueryItem], channels: [RedisName]) throws(HTTPError) {
        if let value = query.last(where: { $0.name == "presence" })?.value {
            guard let on = Bool(value) else { throw .badRequest("presence must be true or false, not '\(value)'") }
            guard !on || !channels.isEmpty else { throw .badRequest("presence=true needs a channel= to join") }
            enabled = on
        }
        if let name = query.last(where: { $0.name == "user" })?.value {
            guard !name.isEmpty, name.utf8.count <= PresenceIdentity.maxUserBytes else {
                throw .badRequest("user must be 1 to \(PresenceIdentity.maxUserBytes) bytes")
            }
            user = name
        }
    }

    /// Whether a subscribe op asks to join presence (`"presence":true`); only channels can.
    static func op(_ json: JSONValue, kind: SubscriptionKind) throws(HTTPError) -> Bool {
        guard let value = json["presence"] else { return false }
        guard let on = value.boolValue else { throw .badRequest("presence must be true or false") }
        guard !on || kind == .channel else { throw .badRequest("presence is for channels (the subscribe op)") }
        return on
    }
}
