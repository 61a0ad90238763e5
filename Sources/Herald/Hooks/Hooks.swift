// Backend authorization hooks (Nchan's `nchan_authorize_request`, Centrifugo's proxies): with
// `--hook-url`, Herald asks the application's backend before a connection opens, before each
// subscription and before each write, handing it the cookie and credentials the browser sent.
// 2xx allows (a connect answer may name the user), 401/403 refuses, anything else, or no answer
// within `--hook-timeout`, refuses as unavailable: fail closed, never open.

/// The calls that go to the hook.
public struct HookEvents: OptionSet, Sendable, Equatable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let connect = HookEvents(rawValue: 1)
    public static let subscribe = HookEvents(rawValue: 2)
    public static let publish = HookEvents(rawValue: 4)
    public static let all: HookEvents = [.connect, .subscribe, .publish]

    /// Parses `connect,subscribe,publish` (any non-empty subset).
    public static func parse(_ text: String) throws(ConfigError) -> HookEvents {
        var events: HookEvents = []
        for word in text.split(separator: ",").map({ String($0).trimmingWhitespace().lowercased() }) where !word.isEmpty {
            switch word {
            case "connect": events.insert(.connect)
            case "subscribe": events.insert(.subscribe)
            case "publish": events.insert(.publish)
            default: throw ConfigError("--hook-events", text, "events are connect, subscribe and publish, not '\(word)'")
            }
        }
        guard !events.isEmpty else { throw ConfigError("--hook-events", text, "name at least one of connect, subscribe, publish") }
        return events
    }

    public var names: [String] {
        [(HookEvents.connect, "connect"), (.subscribe, "subscribe"), (.publish, "publish")].filter { contains($0.0) }.map(\.1)
    }
}

/// Who a hook call is about: the request's client, as the backend sees it.
struct HookCaller {
    /// The connection's id (the same one presence reports), or nil for a plain HTTP request.
    let client: String?
    /// The TCP connection asking: its calls wait for a hook connection in its own turn.
    let connection: ObjectIdentifier
    /// The peer's address.
    let remote: String
    /// The headers the backend decides by: cookie, authorization, origin, user-agent.
    let headers: [(name: String, value: String)]

    /// The headers passed on to the backend.
    static let forwarded = ["cookie", "authorization", "origin", "user-agent"]

    init(client: String?, connection: ObjectIdentifier, remote: String, request: HTTPRequest) {
        self.client = client
        self.connection = connection
        self.remote = remote
        self.headers = Self.forwarded.compactMap { name in request.header(name).map { (name, $0) } }
    }
}

/// What the backend decided.
enum HookVerdict: Equatable {
    /// Allowed; a connect answer may say who the client is.
    case allowed(user: String?, info: JSONValue?)
    /// 401 or 403.
    case refused
    /// No usable answer: the call failed, timed out, or the status was neither 2xx nor 401/403.
    case unavailable(String)
}

/// One loop's hook: builds the calls and reads the answers; every method runs on the loop.
final class Hooks {
    let events: HookEvents
    private let client: HookClient
    private let stats: LoopStats

    init(events: HookEvents, client: HookClient, stats: LoopStats) {
        self.events = events
        self.client = client
        self.stats = stats
    }

    /// Whether `event` goes to the hook.
    func asks(_ event: HookEvents) -> Bool { events.contains(event) }

    /// Asks the backend about `event` (`kind` and `name` say what is subscribed or written).
    /// `done` runs once on this loop.
    func ask(_ event: HookEvents, kind: String?, name: String?, caller: HookCaller, _ done: @escaping (HookVerdict) -> Void) {
        let null = Array("null".utf8)
        var headers = JSONWriter()
        headers.object { h in
            for (name, value) in caller.headers { h.field(name, value) }
        }
        var json = JSONWriter()
        json.object { o in
            o.field("event", event.names.first ?? "")
            if let kind { o.field("kind", kind) } else { o.field("kind", json: null) }
            if let name { o.field("name", name) } else { o.field("name", json: null) }
            if let client = caller.client { o.field("client", client) } else { o.field("client", json: null) }
            o.field("remote", caller.remote)
            o.field("headers", json: headers.bytes)
        }
        let started = Clock.nowMicros()
        stats.hookCalls.bump()
        client.call(json.bytes, for: caller.connection) { result in
            self.stats.hookLatency.observe(micros: Int(Clock.nowMicros() - started))
            let verdict = Self.verdict(result, event: event)
            switch verdict {
            case .allowed: break
            case .refused: self.stats.hookRefusals.bump()
            case .unavailable: self.stats.hookFailures.bump()
            }
            done(verdict)
        }
    }

    /// Reads an answer: 2xx allows (a connect's JSON object may carry `user` and `info`), 401 and
    /// 403 refuse, anything else is no answer.
    static func verdict(_ result: Result<HookResponse, HookFailure>, event: HookEvents) -> HookVerdict {
        switch result {
        case .failure(let failure):
            return .unavailable(failure.description)
        case .success(let response):
            switch response.status {
            case 200...299:
                guard event == .connect, !response.body.isEmpty else { return .allowed(user: nil, info: nil) }
                guard let json = try? JSONValue.parse(response.body), case .object = json else {
                    return .unavailable("the hook's connect answer is not a JSON object")
                }
                let user = json["user"]
                if let user, user.stringValue == nil, user != .null {
                    return .unavailable("the hook's user must be a string")
                }
                let info = json["info"].flatMap { $0 == .null ? nil : $0 }
                return .allowed(user: user?.stringValue, info: info)
            case 401, 403:
                return .refused
            default:
                return .unavailable("the hook answered \(response.status)")
            }
        }
    }

    func stop() { client.stop() }
}
