// `GET /subscribe` (and `GET /events`): validates the query, the origin and the credential,
// then hands the socket to a `SubscriberSession`, over a WebSocket or as Server-Sent Events.

enum SubscribeAPI {
    /// How deliveries are written to the client.
    enum Format: String {
        /// JSON envelopes (`{"type":"message",...}`).
        case json
        /// Bare payloads: text frames for UTF-8, binary frames otherwise.
        case raw
    }

    /// Opens a subscription: a WebSocket when the request upgrades, else Server-Sent Events
    /// when it accepts `text/event-stream` (or `eventStream` is set: the `/events` route).
    static func open(
        _ request: HTTPRequest, _ responder: Responder, access: AccessPolicy, services: LoopServices,
        eventStream: Bool = false
    ) {
        let upgrade = WebSocketHandshake.isUpgrade(request)
        let sse = !upgrade && (eventStream || (request.header("accept")?.contains("text/event-stream") ?? false))
        guard upgrade || sse else {
            responder.fail(.upgradeRequired("GET /subscribe needs a WebSocket upgrade (Upgrade: websocket) or Accept: text/event-stream"))
            return
        }
        // Cross-site WebSocket hijacking: a page from another origin must not ride the
        // browser's ambient access to Herald.
        guard access.allowsOrigin(of: request) else {
            responder.fail(.originNotAllowed)
            return
        }
        guard let query = PercentDecoding.query(request.query) else {
            responder.fail(.badRequest("the query string is badly encoded"))
            return
        }
        var format = Format.json
        var initial: [SubscriptionKind: [RedisName]] = [:]
        var streams: [RedisName] = []
        // Each name once (by bytes), found with sets: a query of a megabyte is read in linear time.
        var seen: [SubscriptionKind: Set<RedisName>] = [:]
        var seenStreams: Set<RedisName> = []
        var watch = WatchQuery()
        var single: [String: QueryItem] = [:]
        for item in query {
            let name = item.name
            if name == "token" {
                continue
            } else if ["from", "group", "consumer", "prefetch", "queue", "lastEventId"].contains(name) {
                single[name] = item
            } else if name == "stream" {
                guard !item.bytes.isEmpty else {
                    responder.fail(.badRequest("stream must not be empty"))
                    return
                }
                if seenStreams.insert(item.redisName).inserted { streams.append(item.redisName) }
            } else if name == "watch" || name == "watch_pattern" {
                guard !item.bytes.isEmpty else {
                    responder.fail(.badRequest("\(name) must not be empty"))
                    return
                }
                watch.add(item.redisName, pattern: name == "watch_pattern")
            } else if name == "format" {
                guard let f = Format(rawValue: item.value) else {
                    responder.fail(.badRequest("format must be json or raw, not '\(item.value)'"))
                    return
                }
                format = f
            } else if let kind = SubscriptionKind(rawValue: name) {
                guard !item.bytes.isEmpty else {
                    responder.fail(.badRequest("\(name) must not be empty"))
                    return
                }
                if seen[kind, default: []].insert(item.redisName).inserted { initial[kind, default: []].append(item.redisName) }
            }
        }
        let plan: StreamPlan
        let presence: PresenceQuery
        do throws(HTTPError) {
            plan = try StreamPlan(streams: streams, options: single, lastEventID: request.header("last-event-id") ?? single["lastEventId"]?.value)
            presence = try PresenceQuery(query, channels: initial[.channel] ?? [])
            try SessionWatches.check(keys: watch.keys, patterns: watch.patterns)
            if sse && (plan.group != nil || plan.queue != nil) {
                throw HTTPError.badRequest("consumer groups and queues take acks: use a WebSocket")
            }
        } catch {
            responder.fail(error)
            return
        }
        if sse {
            openEventStream(
                request, responder, access: access, services: services, query: query, format: format, initial: initial, plan: plan,
                presence: presence, watch: watch)
            return
        }
        let accepted: HTTPResponse
        do {
            accepted = try WebSocketHandshake.accept(request)
        } catch {
            responder.fail(error)
            return
        }
        // Browsers cannot read a refused handshake, so credential problems are told over the
        // socket: an error message, then close 1008.
        let grant: Grant
        do throws(HTTPError) {
            grant = try authorize(
                request, query: query, access: access, initial: initial, plan: plan, watch: watch,
                limit: services.maxSubscriptions, user: presence.user)
        } catch {
            let refusal = RefusedSession(
                connection: responder.connection, code: CloseCode.policyViolation,
                error: Envelope.error(code: error.code, message: error.message))
            if responder.upgrade(accepted, to: refusal) { refusal.start() } else { responder.fail(error) }
            return
        }
        afterHooks(request, responder, services: services, kind: "websocket", initial: initial, plan: plan, watch: watch) { outcome in
            switch outcome {
            case .failure(let error):
                // Refused by the backend: close 1008; no answer from it: try again later (1013).
                let code = error.code == "hook_unavailable" ? CloseCode.tryAgainLater : CloseCode.policyViolation
                let refusal = RefusedSession(
                    connection: responder.connection, code: code, error: Envelope.error(code: error.code, message: error.message))
                if responder.upgrade(accepted, to: refusal) { refusal.start() } else { responder.fail(error) }
            case .success(let (gate, identity)):
                let session = SubscriberSession(
                    connection: responder.connection, format: format, grant: grant, services: services.sessions, gate: gate,
                    identity: identity)
                guard responder.upgrade(accepted, to: session) else {
                    responder.fail(.badRequest("a WebSocket upgrade cannot follow pipelined requests still waiting for answers"))
                    return
                }
                session.start(initial, plan, presence: presence.enabled, watch: watch)
            }
        }
    }

    /// Asks the backend's hook (when there is one) whether this connection may open and take
    /// every subscription its query names; `done` gets the gate for the connection's later
    /// questions and the identity the backend named. Without a hook, `done` runs at once.
    private static func afterHooks(
        _ request: HTTPRequest, _ responder: Responder, services: LoopServices, kind: String,
        initial: [SubscriptionKind: [RedisName]], plan: StreamPlan, watch: WatchQuery,
        _ done: @escaping (Result<(HookGate?, HookIdentity?), HTTPError>) -> Void
    ) {
        guard let hooks = services.hooks else {
            done(.success((nil, nil)))
            return
        }
        let gate = HookGate(
            hooks: hooks,
            caller: HookCaller(
                client: PresenceService.newClientID(), connection: ObjectIdentifier(responder.connection),
                remote: responder.connection.remoteAddress, request: request))
        var names: [(kind: String, names: [RedisName])] = SubscriptionKind.allCases.compactMap { kind in
            initial[kind].map { (kind.rawValue, $0) }
        }
        names.append(("stream", plan.streams))
        if let group = plan.group { names.append(("group", [group.name])) }
        if let queue = plan.queue { names.append(("queue", [queue])) }
        names += [("key", watch.keys), ("key_pattern", watch.patterns)]
        gate.connect(kind: kind) { result in
            switch result {
            case .failure(let error):
                done(.failure(error))
            case .success(let identity):
                gate.check(.subscribe, names[...], verb: "subscribing to") { error in
                    if let error { done(.failure(error)) } else { done(.success((gate, identity))) }
                }
            }
        }
    }

    /// The request's grant, once it covers every name asked for within the per-connection
    /// limit: one check for WebSockets and event streams alike.
    private static func authorize(
        _ request: HTTPRequest, query: [QueryItem], access: AccessPolicy,
        initial: [SubscriptionKind: [RedisName]], plan: StreamPlan, watch: WatchQuery,
        limit: Int, user: String?
    ) throws(HTTPError) -> Grant {
        var grant = try access.grant(for: request, query: query)
        // A token's `sub` names its holder; without one, the client's own `user=` does.
        if grant.identity == nil { grant.identity = PresenceIdentity(user: user) }
        // Every kind counts: channels, patterns, shards, each stream (read alone or in a group)
        // and a queue.
        let keys = plan.streams + (plan.queue.map { [$0] } ?? [])
        if initial.values.reduce(0, { $0 + $1.count }) + keys.count + watch.count > limit { throw .tooManySubscriptions(limit: limit) }
        if let denied = grant.firstDenied(initial) ?? keys.first(where: { !grant.maySubscribe($0) }) {
            throw HTTPError.forbidden("subscribing to \(denied)")
        }
        if let denied = SessionWatches.firstDenied(keys: watch.keys, patterns: watch.patterns, grant: grant) {
            throw HTTPError.forbidden("watching \(denied)")
        }
        return grant
    }

    private static func openEventStream(
        _ request: HTTPRequest, _ responder: Responder, access: AccessPolicy, services: LoopServices,
        query: [QueryItem], format: Format,
        initial: [SubscriptionKind: [RedisName]], plan: StreamPlan, presence: PresenceQuery, watch: WatchQuery
    ) {
        let grant: Grant
        do throws(HTTPError) {
            grant = try authorize(
                request, query: query, access: access, initial: initial, plan: plan, watch: watch,
                limit: services.maxSubscriptions, user: presence.user)
        } catch {
            responder.fail(error)
            return
        }
        afterHooks(request, responder, services: services, kind: "sse", initial: initial, plan: plan, watch: watch) { outcome in
            switch outcome {
            case .failure(let error):
                responder.fail(error)
            case .success(let (gate, identity)):
                let session = SubscriberSession(
                    connection: responder.connection, format: format, grant: grant, services: services.sessions, gate: gate,
                    identity: identity)
                guard responder.startEventStream(session) else {
                    responder.fail(.badRequest("an event stream cannot follow pipelined requests still waiting for answers"))
                    return
                }
                session.start(initial, plan, presence: presence.enabled, watch: watch)
            }
        }
    }
}

/// The keys (`watch=`) and key patterns (`watch_pattern=`) a subscribe request watches, each
/// once (by bytes), in the order given.
struct WatchQuery {
    private(set) var keys: [RedisName] = []
    private(set) var patterns: [RedisName] = []
    private var seen: Set<RedisName> = []
    private var seenPatterns: Set<RedisName> = []

    var isEmpty: Bool { keys.isEmpty && patterns.isEmpty }
    var count: Int { keys.count + patterns.count }

    mutating func add(_ name: RedisName, pattern: Bool) {
        if pattern {
            if seenPatterns.insert(name).inserted { patterns.append(name) }
        } else if seen.insert(name).inserted {
            keys.append(name)
        }
    }
}

/// The stream, consumer-group and queue part of a subscribe request, validated.
struct StreamPlan {
    var streams: [RedisName] = []
    var position = StreamPosition.newOnly
    /// Group name, consumer name, and where a group created on demand starts.
    var group: (name: RedisName, consumer: RedisName, createAt: String)?
    var prefetch = 100
    var queue: RedisName?

    /// `options`: the single-valued parameters (`from`, `group`, `consumer`, `prefetch`,
    /// `queue`, `lastEventId`), the last of each.
    init(streams: [RedisName], options: [String: QueryItem], lastEventID: String?) throws(HTTPError) {
        if let reserved = (streams + [options["queue"]?.redisName ?? ""]).first(where: InternalKeys.isReserved) {
            throw .reservedName(reserved.text)
        }
        self.streams = streams
        // A browser's automatic reconnect repeats the URL (from=0, say) and adds Last-Event-ID:
        // the id it last saw wins, or every reconnect would replay the whole history.
        let from = lastEventID.flatMap { $0.isEmpty ? nil : $0 } ?? options["from"].flatMap { $0.bytes.isEmpty ? nil : $0.value }
        if let from {
            guard let parsed = StreamPosition.parse(from) else {
                throw HTTPError.badID("from must be 0, $, an entry id, a Unix time in ms or an ISO-8601 time, not '\(from)'")
            }
            position = parsed
        }
        if let name = options["group"]?.redisName {
            guard !streams.isEmpty else { throw .badRequest("group needs a stream") }
            guard !name.isEmpty, let consumer = options["consumer"]?.redisName, !consumer.isEmpty else {
                throw .badRequest("group needs a non-empty consumer name")
            }
            let createAt: String
            switch position {
            case .newOnly: createAt = "$"
            case .after(let id): createAt = id.description
            case .time(let ms): createAt = ms == 0 ? "0" : StreamID(ms: ms - 1, seq: .max).description
            }
            group = (name, consumer, createAt)
        } else if options["consumer"] != nil {
            throw .badRequest("consumer needs a group")
        }
        if let text = options["prefetch"]?.value {
            guard let n = Int(text), (1...10_000).contains(n) else { throw .badRequest("prefetch must be 1 to 10000, not '\(text)'") }
            prefetch = n
        }
        if let name = options["queue"]?.redisName {
            guard !name.isEmpty else { throw .badRequest("queue must not be empty") }
            queue = name
        }
        if !streams.isEmpty && options["from"] == nil && lastEventID == nil && group == nil {
            position = .newOnly
        }
    }
}
