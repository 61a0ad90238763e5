// Work queues on Redis lists over HTTP: `POST /queues/{name}` pushes (LPUSH), `GET
// /queues/{name}?wait=S` pops the oldest item (RPOP, or BRPOP on a capped blocking pool).

enum QueuesAPI {
    /// Longest `wait` one pop may ask for, seconds.
    static let maxWaitSeconds = 300

    static func push(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ queues: QueueServices) {
        guard let target = KeyedRequest.queue(request, responder, caller, access: .write) else { return }
        guard let (wait, once) = target.writeOptions(request, responder) else { return }
        let push = [Array("LPUSH".utf8), target.key, request.body]
        caller.afterHook(.publish, kind: "queue", names: [target.name], verb: "pushing to", responder) {
            responder.runWrite(
                push, key: target.key, wait: wait, once: once, scope: "queue", target: target.name.text, ttlMs: caller.idempotencyTtlMs,
                redis: queues.redis, pool: queues.blocking
            ) { reply in
                guard let length = reply.integer else { return nil }
                return {
                    $0.field("queue", target.name)
                    $0.field("length", length)
                }
            }
        }
    }

    static func pop(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ queues: QueueServices) {
        guard let target = KeyedRequest.queue(request, responder, caller, access: .read) else { return }
        var wait = 0
        if let text = target.value("wait") {
            guard let n = Int(text), (0...maxWaitSeconds).contains(n) else {
                responder.fail(.badRequest("wait must be 0 to \(maxWaitSeconds) seconds, not '\(text)'"))
                return
            }
            wait = n
        }
        let key = target.key
        // Items a dead worker held go back to the queue first: the reap script and this pop go
        // down the same link, in that order.
        queues.leases.reapIfDue(target.name)
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
                if queues.drain.expired && command == "BRPOP" {
                    responder.fail(.shuttingDown)  // the wait was cut short by the drain's end
                } else {
                    responder.respond(HTTPResponse(status: 204))
                }
                return
            }
            // The client left while waiting (its wait was cut short, but Redis had already
            // popped): put the item back where the next pop takes it.
            if responder.isAbandoned {
                pushBack(item, to: key, via: queues)
                return
            }
            responder.respond(HTTPResponse(status: 200, headers: [("Content-Type", "application/octet-stream")], body: item))
        }
        if wait == 0 {
            if !queues.redis.send(key: key, [Array("RPOP".utf8), key], { answer($0, "RPOP") }) {
                responder.fail(RedisErrors.unreachable(queues.redis))
            }
            return
        }
        guard queues.redis.isReady else {
            responder.fail(RedisErrors.unreachable(queues.redis))
            return
        }
        guard let ticket = queues.blocking.run(key: key, [Array("BRPOP".utf8), key, Array(String(wait).utf8)], { answer($0, "BRPOP") }) else {
            responder.fail(.tooManyWaiters(capacity: queues.blocking.capacity))
            return
        }
        // A client that leaves frees its blocking connection at once.
        responder.onAbandon { queues.blocking.cancel(ticket) }
    }

    /// Puts an item popped for a client that left back at the pop end of `key`. The item now
    /// exists only here, so a failed push is tried again every half second for half a minute.
    private static func pushBack(_ item: [UInt8], to key: [UInt8], via queues: QueueServices, tries: Int = 60) {
        let retry = {
            guard tries > 1 else {
                queues.logger.error(
                    "an item popped for a client that left could not be put back",
                    metadata: ["queue": "\(String(decoding: key, as: UTF8.self))", "bytes": "\(item.count)"])
                return
            }
            queues.loop.schedule(afterMs: 500) { pushBack(item, to: key, via: queues, tries: tries - 1) }
        }
        let sent = queues.redis.send(key: key, [Array("RPUSH".utf8), key, item]) { reply in
            if reply.isFailure { retry() }
        }
        if !sent { retry() }
    }
}
