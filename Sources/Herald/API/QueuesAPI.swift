// Work queues on Redis lists over HTTP: `POST /queues/{name}` pushes (LPUSH), `GET
// /queues/{name}?wait=S` pops the oldest item (RPOP, or BRPOP on a capped blocking pool).

enum QueuesAPI {
    /// Longest `wait` one pop may ask for, seconds.
    static let maxWaitSeconds = 300

    static func name(_ request: HTTPRequest, _ responder: Responder) -> String? {
        let encoded = request.path.dropFirst("/queues/".count)
        guard let name = PercentDecoding.decode(encoded), !name.isEmpty, UTF8Validation.isValid(name) else {
            responder.fail(.badRequest("the queue name in the path is empty or badly encoded"))
            return nil
        }
        return String(decoding: name, as: UTF8.self)
    }

    static func push(_ request: HTTPRequest, _ responder: Responder, _ grant: Grant) {
        guard let name = name(request, responder) else { return }
        guard grant.mayPublish(name) else {
            responder.fail(AccessPolicy.forbidden("pushing to \(name)"))
            return
        }
        let redis = responder.worker.redis
        let sent = redis.send(key: Array(name.utf8), [Array("LPUSH".utf8), Array(name.utf8), request.body]) { reply in
            guard let length = reply.integer else {
                responder.fail(RedisErrors.httpError(reply, command: "LPUSH"))
                return
            }
            var json = JSONWriter()
            json.object {
                $0.field("queue", name)
                $0.field("length", length)
            }
            responder.respond(.json(200, json.string))
        }
        if !sent { responder.fail(RedisErrors.unreachable(redis)) }
    }

    static func pop(_ request: HTTPRequest, _ responder: Responder, _ grant: Grant) {
        guard let name = name(request, responder) else { return }
        guard grant.maySubscribe(name) else {
            responder.fail(AccessPolicy.forbidden("popping from \(name)"))
            return
        }
        guard let query = PercentDecoding.query(request.query) else {
            responder.fail(.badRequest("the query string is badly encoded"))
            return
        }
        var wait = 0
        if let text = query.last(where: { $0.name == "wait" })?.value {
            guard let n = Int(text), (0...maxWaitSeconds).contains(n) else {
                responder.fail(.badRequest("wait must be 0 to \(maxWaitSeconds) seconds, not '\(text)'"))
                return
            }
            wait = n
        }
        let worker = responder.worker
        let key = Array(name.utf8)
        let answer: (RedisReply, String) -> Void = { reply, command in
            let item: [UInt8]?
            switch reply {
            case .null: item = nil
            case .string(let bytes): item = bytes
            case .array(let pair) where pair.count == 2: item = pair[1].bytes
            default:
                responder.fail(RedisErrors.httpError(reply, command: command))
                return
            }
            guard let item else {
                responder.respond(HTTPResponse(status: 204))
                return
            }
            // The client left while waiting: put the item back where the next pop takes it.
            if responder.connection.isClosed {
                worker.redis.send(key: key, [Array("RPUSH".utf8), key, item]) { _ in }
                return
            }
            responder.respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream")], body: item))
        }
        if wait == 0 {
            if !worker.redis.send(key: key, [Array("RPOP".utf8), key], { answer($0, "RPOP") }) {
                responder.fail(RedisErrors.unreachable(worker.redis))
            }
            return
        }
        guard worker.redis.isReady else {
            responder.fail(RedisErrors.unreachable(worker.redis))
            return
        }
        let started = worker.blocking.run(key: key, [Array("BRPOP".utf8), key, Array(String(wait).utf8)]) { answer($0, "BRPOP") }
        if !started {
            responder.fail(HTTPError(status: 503, code: "too_many_waiters",
                message: "all \(worker.blocking.capacity) blocking Redis connections of this loop are waiting; retry later or use wait=0"))
        }
    }
}
