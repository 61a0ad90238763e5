// What every keyed endpoint (`/publish/{channel}`, `/streams/{key}`, `/queues/{name}`) checks
// before it talks to Redis: the name in the path, the credential's reach, the query string.

/// What the router learned of a broker request before its handler runs: the credential's grant
/// and the decoded query (parsed once, as the credential may be its `token=`).
struct Caller {
    let grant: Grant
    let query: [(name: String, value: String)]
    /// The way past the backend's hook, when there is one.
    var gate: HookGate? = nil
    /// `--idempotency-ttl`: how long the answer of a write with an Idempotency-Key is kept, ms.
    var idempotencyTtlMs: Int64 = 86_400_000

    /// Runs `proceed` once the hook (if it takes `event`) allows every one of `names`;
    /// otherwise answers its refusal.
    func afterHook(
        _ event: HookEvents, kind: String, names: [String], verb: String, _ responder: Responder, _ proceed: @escaping () -> Void
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

    /// The decoded name after the route prefix.
    let name: String
    let query: [(name: String, value: String)]

    /// Validates `request`; answers the error and returns nil when something is wrong. A name
    /// that `isKey` (not a pub/sub channel) must lie outside Herald's own key space.
    init?(
        _ request: HTTPRequest, _ responder: Responder, prefix: String, noun: String, access: Access, verb: String, caller: Caller,
        isKey: Bool = true
    ) {
        // By bytes: Character counting and indexing would walk grapheme boundaries.
        let encoded = Substring(request.path.utf8.dropFirst(prefix.utf8.count))
        guard let name = PercentDecoding.decodeText(encoded), !name.isEmpty else {
            responder.fail(.badRequest("the \(noun) in the path is empty or badly encoded"))
            return nil
        }
        guard !isKey || !InternalKeys.isReserved(name) else {
            responder.fail(.reservedName(name))
            return nil
        }
        guard access == .write ? caller.grant.mayPublish(name) : caller.grant.maySubscribe(name) else {
            responder.fail(HTTPError.forbidden("\(verb) \(name)"))
            return nil
        }
        self.name = name
        self.query = caller.query
    }

    var key: [UInt8] { Array(name.utf8) }

    /// The last value of a query parameter.
    func value(_ parameter: String) -> String? { query.last { $0.name == parameter }?.value }
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
    /// `run`, done at most once for the request's `Idempotency-Key` (`once`): the command runs
    /// in the script that keeps its reply, and a retry is answered from the kept reply, marked
    /// `Idempotent-Replayed: true`. Without a key, plain `run`.
    func run(
        _ arguments: [[UInt8]], key: [UInt8], on redis: CommandSender, once write: IdempotentWrite?, scope: String, target: String,
        ttlMs: Int64, _ answer: @escaping (RedisReply) -> HTTPResponse?
    ) {
        guard let write else {
            run(arguments, key: key, on: redis, answer)
            return
        }
        let command = String(decoding: arguments[0], as: UTF8.self)
        let script = write.command(
            redisKey: write.redisKey(scope: scope, target: target, slotOf: target), commands: [arguments], keys: [key], ttlMs: ttlMs)
        let sent = redis.send(key: key, script) { reply in
            switch IdempotentWrite.outcome(reply) {
            case .reused?:
                self.fail(.idempotencyKeyReused)
            case .done(let replies)? where replies.count == 1:
                self.respond(answer(replies[0]) ?? .error(RedisErrors.httpError(replies[0], command: command)))
            case .replayed(let replies)? where replies.count == 1:
                guard var response = answer(replies[0]) else {
                    self.fail(RedisErrors.httpError(replies[0], command: command))
                    return
                }
                response.markReplayed()
                self.respond(response)
            default:
                self.fail(RedisErrors.httpError(reply, command: command))
            }
        }
        if !sent { fail(RedisErrors.unreachable(redis)) }
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
