// What every keyed endpoint (`/publish/{channel}`, `/streams/{key}`, `/queues/{name}`) checks
// before it talks to Redis: the name in the path, the credential's reach, the query string.

/// What the router learned of a broker request before its handler runs: the credential's grant
/// and the decoded query (parsed once, as the credential may be its `token=`).
struct Caller {
    let grant: Grant
    let query: [QueryItem]
    /// The way past the backend's hook, when there is one.
    var gate: HookGate? = nil
    /// `--idempotency-ttl`: how long the answer of a write with an Idempotency-Key is kept, ms.
    var idempotencyTtlMs: Int64 = 86_400_000

    /// Runs `proceed` once the hook (if it takes `event`) allows every one of `names`;
    /// otherwise answers its refusal.
    func afterHook(
        _ event: HookEvents, kind: String, names: [RedisName], verb: String, _ responder: Responder, _ proceed: @escaping () -> Void
    ) {
        guard let gate, gate.asks(event) else {
            proceed()
            return
        }
        gate.check(event, kind: kind, names: names, verb: verb) { error in
            if let error { responder.fail(error) } else { proceed() }
        }
    }
}

/// A request on one named channel, stream or queue, validated.
struct KeyedRequest {
    enum Access { case write, read }

    /// The decoded name after the route prefix, byte for byte as the client encoded it.
    let name: RedisName
    let query: [QueryItem]

    /// Validates `request`; answers the error and returns nil when something is wrong. A name
    /// that `isKey` (not a pub/sub channel) must lie outside Herald's own key space.
    init?(
        _ request: HTTPRequest, _ responder: Responder, prefix: String, noun: String, access: Access, verb: String, caller: Caller,
        isKey: Bool = true
    ) {
        // By bytes: Character counting and indexing would walk grapheme boundaries.
        let encoded = Substring(request.path.utf8.dropFirst(prefix.utf8.count))
        guard let name = PercentDecoding.decodeName(encoded), !name.isEmpty else {
            responder.fail(.badRequest("the \(noun) in the path is empty or badly encoded"))
            return nil
        }
        guard !isKey || !InternalKeys.isReserved(name) else {
            responder.fail(.reservedName(name.text))
            return nil
        }
        guard access == .write ? caller.grant.mayPublish(name) : caller.grant.maySubscribe(name) else {
            responder.fail(HTTPError.forbidden("\(verb) \(name)"))
            return nil
        }
        self.name = name
        self.query = caller.query
    }

    var key: [UInt8] { name.bytes }

    /// The last value of a query parameter.
    func value(_ parameter: String) -> String? { query.last { $0.name == parameter }?.value }

    /// The `replicas` and `timeout` a write asks for (nil: none).
    func replicaWait() throws(HTTPError) -> ReplicaWait? {
        try ReplicaWait.parse(replicas: value("replicas"), timeout: value("timeout"))
    }

    /// What a write asks beyond itself: acknowledgements from replicas (`replicas`, `timeout`)
    /// and at most once (`Idempotency-Key`). Answers 400 and returns nil when one is malformed.
    func writeOptions(_ request: HTTPRequest, _ responder: Responder) -> (wait: ReplicaWait?, once: IdempotentWrite?)? {
        let wait: ReplicaWait?
        do throws(HTTPError) {
            wait = try replicaWait()
        } catch {
            responder.fail(error)
            return nil
        }
        switch IdempotentWrite.from(request) {
        case .success(let once): return (wait, once)
        case .failure(let error):
            responder.fail(error)
            return nil
        }
    }
}

extension KeyedRequest {
    /// A request on the stream named after `/streams/`.
    static func stream(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, access: Access) -> KeyedRequest? {
        KeyedRequest(
            request, responder, prefix: "/streams/", noun: "stream key", access: access,
            verb: access == .write ? "appending to" : "reading", caller: caller)
    }

    /// A request on the queue named after `/queues/`.
    static func queue(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, access: Access) -> KeyedRequest? {
        KeyedRequest(
            request, responder, prefix: "/queues/", noun: "queue name", access: access,
            verb: access == .write ? "pushing to" : "popping from", caller: caller)
    }
}

extension Responder {
    /// Sends one command for `key` through `redis` and answers with what `answer` makes of the
    /// reply; a reply `answer` rejects (nil) becomes the mapped Redis error, an unreachable Redis
    /// a 503.
    func run(_ arguments: [[UInt8]], key: [UInt8], on redis: CommandSender, _ answer: @escaping (RedisReply) -> HTTPResponse?) {
        let command = String(decoding: arguments[0], as: UTF8.self)
        let sent = redis.send(key: key, arguments) { reply in
            if let response = answer(reply) {
                self.respond(response)
            } else {
                self.fail(RedisErrors.httpError(reply, command: command))
            }
        }
        if !sent { fail(RedisErrors.unreachable(redis)) }
    }
}

extension Responder {
    /// Runs one write for `key` and answers `200` with the JSON object `fields` makes of its
    /// reply (nil: Redis refused it).
    /// - With `once` (the request's `Idempotency-Key`), the write runs in the script that keeps
    ///   its reply; a retry is answered from the kept reply, marked `Idempotent-Replayed: true`,
    ///   and the same key with another request is `422`.
    /// - With `wait`, the write (or that script) and WAIT run on one connection of `pool`, the
    ///   answer adds `"replicas": k`, and fewer than asked is `504 not_replicated` carrying the
    ///   same fields (the write was done on the primary).
    func runWrite(
        _ arguments: [[UInt8]], key: [UInt8], wait: ReplicaWait?, once: IdempotentWrite? = nil, scope: String = "", target: String = "",
        ttlMs: Int64 = 0, redis: CommandSender, pool: BlockingPool,
        _ fields: @escaping (RedisReply) -> ((inout JSONWriter.ObjectWriter) -> Void)?
    ) {
        let command = String(decoding: arguments[0], as: UTF8.self)
        var sent = arguments
        // What the write's reply was, and whether it was kept from an earlier request.
        var decode: (RedisReply) -> Result<(RedisReply, Bool), HTTPError> = { .success(($0, false)) }
        if let once {
            sent = once.command(
                redisKey: once.redisKey(scope: scope, target: target, slotOf: target), commands: [arguments], keys: [key], ttlMs: ttlMs)
            decode = { reply in
                switch IdempotentWrite.outcome(reply) {
                case .reused?: .failure(.idempotencyKeyReused)
                case .done(let replies)? where replies.count == 1: .success((replies[0], false))
                case .replayed(let replies)? where replies.count == 1: .success((replies[0], true))
                default: .failure(RedisErrors.httpError(reply, command: command))
                }
            }
        }
        guard let wait else {
            guard once != nil else {
                run(arguments, key: key, on: redis) { reply in fields(reply).map(HTTPResponse.jsonObject) }
                return
            }
            let queued = redis.send(key: key, sent) { reply in
                switch decode(reply) {
                case .failure(let error):
                    self.fail(error)
                case .success(let (written, replayed)):
                    guard let write = fields(written) else {
                        self.fail(RedisErrors.httpError(written, command: command))
                        return
                    }
                    var response = HTTPResponse.jsonObject(write)
                    if replayed { response.markReplayed() }
                    self.respond(response)
                }
            }
            if !queued { fail(RedisErrors.unreachable(redis)) }
            return
        }
        guard redis.isReady else {
            fail(RedisErrors.unreachable(redis))
            return
        }
        let ticket = wait.run(sent, key: key, on: pool) { reply, acknowledged in
            let written: (inout JSONWriter.ObjectWriter) -> Void
            let replayed: Bool
            switch decode(reply) {
            case .failure(let error):
                self.fail(error)
                return
            case .success(let (reply, kept)):
                guard let made = fields(reply) else {
                    self.fail(RedisErrors.httpError(reply, command: command))
                    return
                }
                written = made
                replayed = kept
            }
            let count = acknowledged ?? 0
            if count >= wait.replicas {
                var response = HTTPResponse.jsonObject {
                    written(&$0)
                    $0.field("replicas", count)
                }
                if replayed { response.markReplayed() }
                self.respond(response)
                return
            }
            let error = wait.shortfall(count)
            var json = JSONWriter()
            json.object {
                $0.field("error", error.code)
                $0.field("message", error.message)
                written(&$0)
                $0.field("replicas", count)
                $0.field("asked", wait.replicas)
            }
            self.respond(.json(error.status, json.string))
        }
        guard let ticket else {
            fail(.tooManyWaiters(capacity: pool.capacity))
            return
        }
        // A client that leaves frees its connection at once (CLIENT UNBLOCK ends the WAIT).
        onAbandon { pool.cancel(ticket) }
    }
}

extension HTTPResponse {
    /// `200` with a JSON object built by `fields`.
    static func jsonObject(_ fields: (inout JSONWriter.ObjectWriter) -> Void) -> HTTPResponse {
        var json = JSONWriter()
        json.object(fields)
        return .json(200, json.string)
    }
}
