// Work queues on Redis lists over HTTP: `POST /queues/{name}` pushes (LPUSH), `GET
// /queues/{name}?wait=S` pops the oldest item (RPOP, or BRPOP on a capped blocking pool).

enum QueuesAPI {
    /// Longest `wait` one pop may ask for, seconds.
    static let maxWaitSeconds = 300

    static func push(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller) {
        guard let target = KeyedRequest(request, responder, prefix: "/queues/", noun: "queue name", access: .write,
                                        verb: "pushing to", caller: caller) else { return }
        responder.run([Array("LPUSH".utf8), target.key, request.body], key: target.key) { reply in
            guard let length = reply.integer else { return nil }
            return .jsonObject {
                $0.field("queue", target.name)
                $0.field("length", length)
            }
        }
    }

    static func pop(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller) {
        guard let target = KeyedRequest(request, responder, prefix: "/queues/", noun: "queue name", access: .read,
                                        verb: "popping from", caller: caller) else { return }
        var wait = 0
        if let text = target.value("wait") {
            guard let n = Int(text), (0...maxWaitSeconds).contains(n) else {
                responder.fail(.badRequest("wait must be 0 to \(maxWaitSeconds) seconds, not '\(text)'"))
                return
            }
            wait = n
        }
        let worker = responder.worker
        let key = target.key
        // Items a dead worker held go back to the queue first: the reap script and this pop go
        // down the same link, in that order.
        worker.queueLeases.reapIfDue(target.name)
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
