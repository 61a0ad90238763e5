// A subscribed WebSocket client: its subscriptions in the Hub, its control messages
// (subscribe, psubscribe, ssubscribe, unsubscribe, publish, ping, refresh, watch, unwatch), its
// deliveries, and its token's life (TokenLifetime.swift).
import FoundationEssentials

/// One WebSocket subscriber; confined to its loop. Holds its connection until it closes.
final class SubscriberSession: SessionApp, Subscriber {
    private let connection: any SessionClient
    private let format: SubscribeAPI.Format
    /// What this client's credential allows; replaced by a `refresh` op.
    private var grant: Grant
    /// Follows the token's `exp` (created for the first token that has one).
    private var tokenClock: TokenClock?
    /// By bytes, as Redis and the Hub tell names apart.
    private var subscriptions = SubscriptionSets()
    private var readers: [StreamReader] = []
    private var groups: [GroupReader] = []
    private var queueWorker: QueueWorker?
    private var isClosed = false
    /// Ops waiting on Redis (publishes, acks, subscribes not yet confirmed). Capped like HTTP
    /// pipelining: one client cannot make the loop hold its requests without bound (a
    /// subscribe op repeated while Redis is away would otherwise pile up confirmations).
    private var inFlight = 0
    static let maxInFlight = 64

    /// The loop's services sessions use (one reference: a loop holds tens of thousands of
    /// sessions, so what each one carries is kept small).
    private let services: SessionServices
    private var hub: Hub { services.hub }
    private var publisher: Publisher { services.publisher }
    private var streams: StreamServices { services.streams }
    private var queues: QueueServices { services.queues }
    private var tokens: TokenServices { services.tokens }
    private var presenceService: PresenceService { services.presence }
    private var watchRegistry: WatchRegistry { services.watches }
    /// The keys and patterns this connection watches, made when watching is first used.
    private var watchState: SessionWatches?
    private var watches: SessionWatches {
        if let watchState { return watchState }
        let made = SessionWatches(registry: watchRegistry, connection: connection)
        watchState = made
        return made
    }
    /// The channels this connection is a presence member of, made when presence is first used:
    /// a subscriber that never asks for presence costs no id and no object for it.
    private var presenceState: SessionPresence?
    /// This connection's presence. Its id is the one the backend's hook was asked with; its
    /// identity what the hook's connect answer said, else the token's (or the client's `user=`).
    private var presence: SessionPresence {
        if let presenceState { return presenceState }
        let made = SessionPresence(
            service: presenceService,
            identity: identity.map { PresenceIdentity(user: $0.user, info: $0.info) } ?? grant.identity ?? PresenceIdentity(),
            client: gate?.caller.client ?? PresenceService.newClientID()
        ) { [weak self] in self?.sendJSON($0) }
        presenceState = made
        return made
    }
    /// `--max-subscriptions`: of every kind together.
    private var maxSubscriptions: Int { services.maxSubscriptions }
    /// With a hook: the way past it, and who its connect answer said this client is (one
    /// reference, nil without a hook).
    private let hook: SessionHook?
    /// The backend's hook, asked before each subscription and publish (nil: no hook).
    private var gate: HookGate? { hook?.gate }
    /// Who the backend's connect answer said this client is.
    var identity: HookIdentity? { hook?.identity }

    /// A session's part of the backend's hook.
    final class SessionHook {
        let gate: HookGate
        let identity: HookIdentity?

        init(gate: HookGate, identity: HookIdentity?) {
            self.gate = gate
            self.identity = identity
        }
    }

    init(
        connection: any SessionClient, format: SubscribeAPI.Format, grant: Grant, services: SessionServices, gate: HookGate? = nil,
        identity: HookIdentity? = nil
    ) {
        self.connection = connection
        self.format = format
        self.grant = grant
        self.services = services
        hook = gate.map { SessionHook(gate: $0, identity: identity) }
    }

    // MARK: Subscriber

    func deliver(_ delivery: Delivery) {
        connection.deliver(delivery, raw: format == .raw)
    }

    func gap(kind: SubscriptionKind, name: RedisName) {
        sendJSON(Envelope.gap(kind: kind, name: name.text))
    }

    // MARK: SessionApp

    func closed() {
        isClosed = true
        tokenClock?.stop()
        tokenClock = nil
        presenceState?.leaveAll()
        watchState?.close()
        for (kind, names) in subscriptions.all { hub.unsubscribe(self, kind: kind, names: Array(names), leaving: true) }
        subscriptions = SubscriptionSets()
        for reader in readers { reader.stop() }
        for group in groups { group.stop() }
        queueWorker?.stop()
        readers = []
        groups = []
        queueWorker = nil
    }

    func drained() {
        for reader in readers { reader.drained() }
        watchState?.drained()
    }

    /// Starts what a subscribe request asked for: its pub/sub subscriptions, stream readers,
    /// group members and queue worker.
    func start(_ initial: [SubscriptionKind: [RedisName]], _ plan: StreamPlan, presence joins: Bool = false, watch: WatchQuery = WatchQuery()) {
        followToken()
        if !watch.isEmpty { watches.watch(keys: watch.keys, patterns: watch.patterns, id: nil) }
        for kind in SubscriptionKind.allCases {
            if let names = initial[kind] { subscribe(kind, names, id: nil) }
        }
        if joins { presence.join((initial[.channel] ?? []).map(\.text)) }
        for stream in plan.streams {
            if let group = plan.group {
                let reader = GroupReader(
                    stream: stream, group: group.name, consumer: group.consumer, createAt: group.createAt,
                    prefetch: plan.prefetch, connection: connection, services: streams)
                groups.append(reader)
                reader.start()
            } else {
                let reader = StreamReader(stream: stream, position: plan.position, connection: connection, services: streams)
                readers.append(reader)
                reader.start()
            }
        }
        if let queue = plan.queue { queueWorker = QueueWorker(queue: queue, connection: connection, services: queues) }
    }

    func received(_ message: WebSocketEvent) {
        guard case .text(let bytes) = message else {
            sendJSON(Envelope.error(code: "binary_not_supported", message: "control messages are JSON text frames"))
            return
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(bytes)
        } catch {
            sendJSON(Envelope.error(code: "bad_json", message: "not valid JSON: \(error)"))
            return
        }
        let id = json["id"]
        guard case .object = json else {
            sendJSON(Envelope.error(code: "bad_request", message: "a control message is a JSON object with an op"))
            return
        }
        guard let op = json["op"]?.stringValue else {
            sendJSON(Envelope.error(code: "bad_request", message: "op is missing", id: id))
            return
        }
        do throws(HTTPError) {
            if inFlight >= Self.maxInFlight && ["subscribe", "psubscribe", "ssubscribe", "publish", "ack", "watch"].contains(op) {
                throw HTTPError.overloaded("\(Self.maxInFlight) requests of this connection are waiting on Redis; wait for their answers")
            }
            switch op {
            case "subscribe": try checkedSubscribe(.channel, json, plural: "channels", singular: "channel", id: id)
            case "psubscribe": try checkedSubscribe(.pattern, json, plural: "patterns", singular: "pattern", id: id)
            case "ssubscribe": try checkedSubscribe(.shard, json, plural: "channels", singular: "channel", id: id)
            case "unsubscribe": try unsubscribe(json, id: id)
            case "publish": try publish(json, id: id)
            case "ack": try ack(json, id: id)
            case "pop": try pop(json, id: id)
            case "presence": try presence.answer(json, id: id, grant: grant)
            case "ping": sendJSON(Envelope.answer("pong", id: id))
            case "refresh": try refresh(json, id: id)
            case "watch": try watches.answerWatch(json, id: id, grant: grant, gate: gate, held: heldCount, limit: maxSubscriptions)
            case "unwatch": try watches.answerUnwatch(json, id: id)
            default:
                sendJSON(Envelope.error(code: "unknown_op", message: "unknown op '\(op)'", id: id))
            }
        } catch {
            sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
        }
    }

    /// Everything this connection is subscribed to, of every kind: what `--max-subscriptions`
    /// caps (a stream read, a group member and a queue worker each count one).
    private var heldCount: Int {
        subscriptions.count + readers.count + groups.count + (queueWorker == nil ? 0 : 1) + (watchState?.count ?? 0)
    }

    /// A subscribe op, within the per-connection limit and the credential's globs. The limit is
    /// checked while the names are read, so an op listing a million names costs no more than
    /// reading it.
    private func checkedSubscribe(
        _ kind: SubscriptionKind, _ json: JSONValue, plural: String, singular: String,
        id: JSONValue?
    ) throws(HTTPError) {
        let limit = maxSubscriptions
        let held = heldCount
        let current = subscriptions[kind] ?? []
        var added = 0
        let names = try names(json, plural: plural, singular: singular, required: true) { (name) throws(HTTPError) in
            guard !current.contains(name) else { return }  // held already: costs nothing
            added += 1
            if held + added > limit { throw .tooManySubscriptions(limit: limit) }
        }
        let allowed = { (name: RedisName) in kind == .pattern ? self.grant.maySubscribe(pattern: name) : self.grant.maySubscribe(name) }
        if let denied = names.first(where: { !allowed($0) }) {
            throw HTTPError.forbidden("subscribing to \(denied)")
        }
        let joins = try PresenceQuery.op(json, kind: kind)
        guard let gate, gate.asks(.subscribe) else {
            subscribe(kind, names, id: id)
            if joins { presence.join(names.map(\.text)) }
            return
        }
        // The backend decides each name; meanwhile the op counts as waiting, and the limit is
        // checked again with what other ops added.
        inFlight += 1
        gate.check(.subscribe, kind: kind.rawValue, names: names, verb: "subscribing to") { error in
            self.inFlight -= 1
            guard !self.isClosed else { return }
            if let error {
                self.sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
                return
            }
            let held = self.subscriptions[kind] ?? []
            let added = names.filter { !held.contains($0) }.count
            guard self.heldCount + added <= limit else {
                let error = HTTPError.tooManySubscriptions(limit: limit)
                self.sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
                return
            }
            self.subscribe(kind, names, id: id)
            if joins { self.presence.join(names.map(\.text)) }
        }
    }

    // MARK: Operations

    func subscribe(_ kind: SubscriptionKind, _ names: [RedisName], id: JSONValue?) {
        subscriptions[kind, default: []].formUnion(names)
        inFlight += 1
        // Strong captures here: a weak one would give the session a side table, and the Hub
        // retains it on every delivery. A closed session lives on only until Redis confirms.
        hub.subscribe(self, kind: kind, names: names) {
            self.inFlight -= 1
            guard !self.isClosed else { return }
            self.sendJSON(Envelope.subscribed("subscribed", kind: kind, names: names.map(\.text), id: id))
        }
    }

    private func unsubscribe(_ json: JSONValue, id: JSONValue?) throws(HTTPError) {
        let requested: [(SubscriptionKind, [RedisName])] = [
            (.channel, try names(json, plural: "channels", singular: "channel", required: false)),
            (.pattern, try names(json, plural: "patterns", singular: "pattern", required: false)),
            (.shard, try names(json, plural: "shards", singular: "shard", required: false)),
        ]
        let everything = requested.allSatisfy { $0.1.isEmpty }
        var answered = false
        for (kind, listed) in requested {
            let names = everything ? (subscriptions[kind].map { $0.sorted() } ?? []) : listed
            guard !names.isEmpty else { continue }
            subscriptions[kind]?.subtract(names)
            hub.unsubscribe(self, kind: kind, names: names)
            if kind == .channel { presence.leave(names.map(\.text)) }
            sendJSON(Envelope.subscribed("unsubscribed", kind: kind, names: names.map(\.text), id: id))
            answered = true
        }
        if !answered { sendJSON(Envelope.subscribed("unsubscribed", kind: .channel, names: [], id: id)) }
    }

    /// `{"op":"ack","stream":s,"ids":[..]}` (consumer group) or `{"op":"ack","queue":q,"tag":n}`.
    private func ack(_ json: JSONValue, id: JSONValue?) throws(HTTPError) {
        if json["queue"] != nil {
            guard let consumer = queueWorker, json["queue"]?.nameValue == consumer.queue else {
                throw .badRequest("this connection is not a worker of that queue (connect with queue=...)")
            }
            guard case .number(let text)? = json["tag"], let tag = Int(text) else { throw .badRequest("tag must be a number") }
            consumer.ack(tag: tag, wait: try ReplicaWait.parse(json), id: id)
            return
        }
        guard let stream = json["stream"]?.nameValue else { throw .badRequest("ack needs a stream (or a queue)") }
        guard let reader = groups.first(where: { $0.stream == stream }) else {
            throw .badRequest("this connection does not consume \(stream) in a group")
        }
        var ids: [StreamID] = []
        for item in json["ids"]?.arrayValue ?? [] {
            guard let text = item.stringValue, let parsed = StreamID(text) else { throw .badRequest("ids must be entry ids like 1700000000000-0") }
            ids.append(parsed)
        }
        guard !ids.isEmpty else { throw .badRequest("ids must be a non-empty array of entry ids") }
        let wait = try ReplicaWait.parse(json)
        inFlight += 1
        reader.ack(ids, wait: wait) { result, replicas in
            self.inFlight -= 1
            guard !self.isClosed else { return }
            switch result {
            case .success(let count):
                let acknowledged = replicas ?? 0
                if let wait, acknowledged < wait.replicas {
                    // Acked on the primary only: after a failover the entries may be redelivered.
                    let error = wait.shortfall(acknowledged)
                    self.sendJSON(
                        Envelope.answer("error", id: id) {
                            $0.field("code", error.code)
                            $0.field("message", error.message)
                            $0.field("stream", stream)
                            $0.field("count", count)
                            $0.field("replicas", acknowledged)
                            $0.field("asked", wait.replicas)
                        })
                    return
                }
                self.sendJSON(
                    Envelope.answer("acked", id: id) {
                        $0.field("stream", stream)
                        $0.field("count", count)
                        if wait != nil { $0.field("replicas", acknowledged) }
                    })
            case .failure(let error):
                self.sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
            }
        }
    }

    /// `{"op":"pop","wait":30}`: the next item of this connection's queue.
    private func pop(_ json: JSONValue, id: JSONValue?) throws(HTTPError) {
        guard let consumer = queueWorker else { throw .badRequest("pop needs a queue connection (connect with queue=...)") }
        var wait = 30
        if let value = json["wait"] {
            guard case .number(let text) = value, let n = Int(text), (0...QueuesAPI.maxWaitSeconds).contains(n) else {
                throw .badRequest("wait must be 0 to \(QueuesAPI.maxWaitSeconds) seconds")
            }
            wait = n
        }
        consumer.pop(wait: wait, id: id)
    }

    private func publish(_ json: JSONValue, id: JSONValue?) throws(HTTPError) {
        let message = try PublishAPI.message(from: json)
        guard grant.mayPublish(message.channel) else { throw HTTPError.forbidden("publishing to \(message.channel)") }
        let once: IdempotentWrite?
        switch IdempotentWrite.from(op: json, fields: ["channel", "message", "sharded"]) {
        case .success(let write): once = write
        case .failure(let error): throw error
        }
        inFlight += 1
        guard let gate, gate.asks(.publish) else {
            publish(message, once: once, id: id)
            return
        }
        gate.check(.publish, kind: message.sharded ? "shard" : "channel", names: [message.channel], verb: "publishing to") { error in
            guard !self.isClosed else {
                self.inFlight -= 1
                return
            }
            if let error {
                self.inFlight -= 1
                self.sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
            } else {
                self.publish(message, once: once, id: id)
            }
        }
    }

    /// Publishes an op's message (one `inFlight` is held for it) and answers; with an
    /// `idempotency_key`, at most once (a retry's answer says `"replayed":true`).
    private func publish(_ message: PublishAPI.Message, once: IdempotentWrite?, id: JSONValue?) {
        if let once {
            PublishAPI.publishOnce([message], write: once, target: message.channel.text, ttlMs: publisher.idempotencyTtlMs, via: publisher) { result in
                self.inFlight -= 1
                guard !self.isClosed else { return }
                switch result {
                case .success(let (receivers, replayed)):
                    self.sendJSON(
                        Envelope.answer("published", id: id) {
                            $0.field("channel", message.channel)
                            $0.field("receivers", receivers[0])
                            if replayed { $0.field("replayed", true) }
                        })
                case .failure(let error):
                    self.sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
                }
            }
            return
        }
        PublishAPI.publish(message, grant: grant, via: publisher) { result in
            self.inFlight -= 1
            guard !self.isClosed else { return }
            switch result {
            case .success(let receivers):
                self.sendJSON(
                    Envelope.answer("published", id: id) {
                        $0.field("channel", message.channel)
                        $0.field("receivers", receivers)
                    })
            case .failure(let error):
                self.sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
            }
        }
    }

    // MARK: Token lifetime

    /// `{"op":"refresh","token":".."}`: the new token's grant replaces the old one once it is
    /// verified (signature, `exp`, same `sub`); subscriptions it no longer covers end, then the
    /// answer `refreshed` goes. A refused token changes nothing. No Redis work: each costs one
    /// HMAC, within `--max-message`.
    private func refresh(_ json: JSONValue, id: JSONValue?) throws(HTTPError) {
        guard let token = json["token"]?.stringValue, !token.isEmpty else {
            throw .badRequest("refresh needs a token (a non-empty string)")
        }
        let refreshed = try tokens.access.refreshedGrant(token, replacing: grant, now: Date().timeIntervalSince1970)
        let narrowed = refreshed.subscribe != grant.subscribe
        let watchNarrowed = refreshed.watch != grant.watch
        grant = refreshed
        if narrowed { endUncovered() }
        if watchNarrowed { watchState?.endUncovered(refreshed) }
        followToken()
        sendJSON(Envelope.refreshed(expiresAt: refreshed.token?.expiresAt, id: id))
    }

    /// Follows the current token's `exp`: a warning before it, the end of the session at it.
    private func followToken() {
        guard let expiresAt = grant.token?.expiresAt else {
            tokenClock?.stop()
            return
        }
        if tokenClock == nil {
            // Unowned: the session owns the clock and stops it when it closes.
            tokenClock = TokenClock(
                services: tokens,
                warn: { [unowned self] seconds in sendJSON(Envelope.tokenExpiring(in: seconds)) },
                expire: { [unowned self] in tokenExpired() })
        }
        tokenClock?.follow(expiresAt)
    }

    /// The token ran out without a refresh: the client is told, then a WebSocket closes with
    /// 1008 and an event stream ends.
    private func tokenExpired() {
        let error = HTTPError.tokenExpired
        sendJSON(Envelope.error(code: error.code, message: "\(error.message): connect again with a new one"))
        connection.end(code: CloseCode.policyViolation, reason: "token expired")
    }

    /// Ends what the grant no longer lets this client read: pub/sub subscriptions, stream
    /// readers, group members and the queue worker (whose held items go back to the queue),
    /// each kind with one `unsubscribed` notice, reason `forbidden`.
    private func endUncovered() {
        for kind in SubscriptionKind.allCases {
            guard let held = subscriptions[kind] else { continue }
            let lost = held.filter { !grant.maySubscribe(kind, $0) }.sorted()
            guard !lost.isEmpty else { continue }
            subscriptions[kind]?.subtract(lost)
            hub.unsubscribe(self, kind: kind, names: lost)
            // A channel the token no longer covers is left in presence too.
            if kind == .channel { presence.leave(lost.map(\.text)) }
            sendJSON(Envelope.revoked(kind: kind.rawValue, names: lost.map(\.text)))
        }
        var lostStreams: [String] = []
        readers.removeAll { reader in
            guard !grant.maySubscribe(reader.stream) else { return false }
            reader.stop()
            lostStreams.append(reader.stream.text)
            return true
        }
        groups.removeAll { group in
            guard !grant.maySubscribe(group.stream) else { return false }
            group.stop()
            lostStreams.append(group.stream.text)
            return true
        }
        if !lostStreams.isEmpty { sendJSON(Envelope.revoked(kind: "stream", names: lostStreams)) }
        if let worker = queueWorker, !grant.maySubscribe(worker.queue) {
            worker.stop()
            queueWorker = nil
            sendJSON(Envelope.revoked(kind: "queue", names: [worker.queue.text]))
        }
    }

    /// Names given as `plural: [..]` or `singular: ".."`; each a non-empty string, each once
    /// (by bytes), in the order given. `admit` sees each distinct name as it is read and may
    /// refuse the op before the rest is read.
    private func names(
        _ json: JSONValue, plural: String, singular: String, required: Bool,
        admit: (RedisName) throws(HTTPError) -> Void = { _ in }
    ) throws(HTTPError) -> [RedisName] {
        var names: [RedisName] = []
        var seen: Set<RedisName> = []
        func add(_ name: RedisName) throws(HTTPError) {
            guard !seen.contains(name) else { return }
            try admit(name)
            seen.insert(name)
            names.append(name)
        }
        if let list = json[plural] {
            guard let items = list.arrayValue else { throw .badRequest("\(plural) must be an array of strings") }
            for item in items {
                guard let name = item.nameValue, !name.isEmpty else { throw .badRequest("\(plural) must hold non-empty strings") }
                try add(name)
            }
        }
        if let one = json[singular] {
            guard let name = one.nameValue, !name.isEmpty else { throw .badRequest("\(singular) must be a non-empty string") }
            try add(name)
        }
        if required && names.isEmpty { throw .badRequest("give \(plural) (an array) or \(singular) (a string)") }
        return names
    }

    private func sendJSON(_ bytes: [UInt8]) {
        guard !isClosed else { return }
        connection.sendMessage(bytes)
    }
}
