// Publishing: `POST /publish/{channel}` (body = message), `POST /publish` (JSON, single or
// batch), and the WebSocket `publish` op, all pipelined onto the loop's Redis command link.

enum PublishAPI {
    /// One message to publish.
    struct Message {
        let channel: RedisName
        let payload: [UInt8]
        let sharded: Bool
    }

    private static let publish = Array("PUBLISH".utf8)
    private static let spublish = Array("SPUBLISH".utf8)

    /// Sends PUBLISH (or SPUBLISH) through `publisher` and reports the receiver count.
    static func publish(_ message: Message, grant: Grant, via publisher: Publisher, _ done: @escaping (Result<Int, HTTPError>) -> Void) {
        guard grant.mayPublish(message.channel) else {
            done(.failure(HTTPError.forbidden("publishing to \(message.channel)")))
            return
        }
        // A forged join or leave there would reach every presence member of a channel.
        guard !PresenceKeys.isEventChannel(message.channel) else {
            done(.failure(.reservedName(message.channel.text)))
            return
        }
        guard publisher.redis.pendingCount < publisher.maxPending else {
            publisher.stats.publishErrors.bump()
            done(.failure(.overloaded("\(publisher.maxPending) commands are already waiting on Redis; retry shortly")))
            return
        }
        let started = Clock.nowMicros()
        let channel = message.channel.bytes
        // SPUBLISH goes to the channel's slot owner; PUBLISH may go to any node.
        let sent = publisher.redis.send(
            key: message.sharded ? channel : nil,
            [message.sharded ? spublish : publish, channel, message.payload]
        ) { reply in
            switch reply {
            case .integer(let receivers):
                publisher.stats.published.bump()
                publisher.stats.publishLatency.observe(micros: Int(Clock.nowMicros() - started))
                done(.success(receivers))
            default:
                publisher.stats.publishErrors.bump()
                done(.failure(RedisErrors.httpError(reply, command: message.sharded ? "SPUBLISH" : "PUBLISH")))
            }
        }
        if !sent {
            publisher.stats.publishErrors.bump()
            done(.failure(RedisErrors.unreachable(publisher.redis)))
        }
    }

    static func publishPath(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ publisher: Publisher) {
        guard
            let target = KeyedRequest(
                request, responder, prefix: "/publish/", noun: "channel", access: .write,
                verb: "publishing to", caller: caller, isKey: false)
        else { return }
        let sharded: Bool
        switch target.value("sharded") {
        case nil, "false", "0": sharded = false
        case "true", "1", "": sharded = true
        case let other?:
            responder.fail(.badRequest("sharded must be true or false, not '\(other)'"))
            return
        }
        let message = Message(channel: target.name, payload: request.body, sharded: sharded)
        if request.header(IdempotentWrite.header) != nil {
            publishOnce([message], batch: false, request, responder, caller, publisher)
            return
        }
        // Without a hook nothing is built for it: this is the hot path.
        guard caller.gate != nil else {
            publishAndAnswer(message, caller, responder, publisher)
            return
        }
        caller.afterHook(.publish, kind: sharded ? "shard" : "channel", names: [target.name], verb: "publishing to", responder) {
            publishAndAnswer(message, caller, responder, publisher)
        }
    }

    /// A publish (or batch) with an `Idempotency-Key`: every message in one script that also
    /// keeps the receiver counts, so a retry publishes nothing and gets the same answer.
    private static func publishOnce(
        _ messages: [Message], batch: Bool, _ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ publisher: Publisher
    ) {
        let write: IdempotentWrite
        switch IdempotentWrite.from(request) {
        case .success(let parsed?): write = parsed
        case .success(nil): return
        case .failure(let error):
            responder.fail(error)
            return
        }
        let channels = messages.filter { !$0.sharded }.map(\.channel)
        let shards = messages.filter(\.sharded).map(\.channel)
        caller.afterHook(.publish, kind: "channel", names: channels, verb: "publishing to", responder) {
            caller.afterHook(.publish, kind: "shard", names: shards, verb: "publishing to", responder) {
                publishOnce(messages, write: write, target: batch ? "" : messages[0].channel.text, ttlMs: caller.idempotencyTtlMs, via: publisher) {
                    result in
                    switch result {
                    case .failure(let error):
                        responder.fail(error)
                    case .success(let (receivers, replayed)):
                        var response =
                            batch
                            ? batchAnswer(messages, receivers.map { .success($0) })
                            : .json(200, bytes: answer(messages[0].channel, receivers[0]))
                        if replayed { response.markReplayed() }
                        responder.respond(response)
                    }
                }
            }
        }
    }

    /// Publishes `messages` at most once for `write`: `done` gets each message's receivers (as
    /// counted the first time) and whether they were kept from an earlier request. Sharded
    /// messages must share one slot (the script runs on one node).
    static func publishOnce(
        _ messages: [Message], write: IdempotentWrite, target: String, ttlMs: Int64, via publisher: Publisher,
        _ done: @escaping (Result<([Int], Bool), HTTPError>) -> Void
    ) {
        let shards = messages.filter(\.sharded).map(\.channel.bytes)
        if let first = shards.first, shards.contains(where: { SlotHash.slot($0) != SlotHash.slot(first) }) {
            done(.failure(.badRequest("a batch with an Idempotency-Key may publish to sharded channels of one slot only")))
            return
        }
        // The script runs where its key lives: a shard channel's slot, else the target's (or,
        // for a batch, the key's own).
        let slotOf = shards.first.map { String(decoding: $0, as: UTF8.self) } ?? (target.isEmpty ? write.key : target)
        let commands = messages.map { [$0.sharded ? spublish : publish, $0.channel.bytes, $0.payload] }
        let script = write.command(
            redisKey: write.redisKey(scope: "publish", target: target, slotOf: slotOf), commands: commands, keys: [], ttlMs: ttlMs)
        let sent = publisher.redis.send(key: Array(slotOf.utf8), script) { reply in
            switch IdempotentWrite.outcome(reply) {
            case .reused?:
                done(.failure(.idempotencyKeyReused))
            case .done(let replies)? where replies.count == messages.count:
                publisher.stats.published.bump(messages.count)
                done(.success((replies.map { $0.integer ?? 0 }, false)))
            case .replayed(let replies)? where replies.count == messages.count:
                done(.success((replies.map { $0.integer ?? 0 }, true)))
            default:
                publisher.stats.publishErrors.bump()
                done(.failure(RedisErrors.httpError(reply, command: "PUBLISH")))
            }
        }
        if !sent {
            publisher.stats.publishErrors.bump()
            done(.failure(RedisErrors.unreachable(publisher.redis)))
        }
    }

    private static func publishAndAnswer(_ message: Message, _ caller: Caller, _ responder: Responder, _ publisher: Publisher) {
        publish(message, grant: caller.grant, via: publisher) { result in
            switch result {
            case .success(let receivers): responder.respond(.json(200, bytes: answer(message.channel, receivers)))
            case .failure(let error): responder.fail(error)
            }
        }
    }

    static func publishJSON(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ publisher: Publisher) {
        let json: JSONValue
        do {
            json = try JSONValue.parse(request.body)
        } catch {
            responder.fail(.badRequest("the body is not valid JSON: \(error)"))
            return
        }
        let messages: [Message]
        let batch = json["messages"] != nil
        switch messageList(json) {
        case .success(let list): messages = list
        case .failure(let error):
            responder.fail(error)
            return
        }
        // A batch is checked whole before anything is published.
        if let denied = messages.first(where: { !caller.grant.mayPublish($0.channel) }) {
            responder.fail(HTTPError.forbidden("publishing to \(denied.channel)"))
            return
        }
        if request.header(IdempotentWrite.header) != nil {
            publishOnce(messages, batch: batch, request, responder, caller, publisher)
            return
        }
        // The hook hears of every channel (then every shard channel) before anything is published.
        let channels = messages.filter { !$0.sharded }.map(\.channel)
        let shards = messages.filter(\.sharded).map(\.channel)
        caller.afterHook(.publish, kind: "channel", names: channels, verb: "publishing to", responder) {
            caller.afterHook(.publish, kind: "shard", names: shards, verb: "publishing to", responder) {
                publishAll(messages, batch: batch, caller, responder, publisher)
            }
        }
    }

    private static func publishAll(_ messages: [Message], batch: Bool, _ caller: Caller, _ responder: Responder, _ publisher: Publisher) {
        var results = [Result<Int, HTTPError>?](repeating: nil, count: messages.count)
        var left = messages.count
        for (index, message) in messages.enumerated() {
            publish(message, grant: caller.grant, via: publisher) { result in
                results[index] = result
                left -= 1
                guard left == 0 else { return }
                if !batch {
                    switch result {
                    case .success(let receivers): responder.respond(.json(200, bytes: answer(message.channel, receivers)))
                    case .failure(let error): responder.fail(error)
                    }
                    return
                }
                responder.respond(batchAnswer(messages, results.map { $0! }))
            }
        }
    }

    /// The messages of a JSON body: `{"messages":[...]}` (a batch) or one message object.
    static func messageList(_ json: JSONValue) -> Result<[Message], HTTPError> {
        Result { () throws(HTTPError) -> [Message] in
            guard let list = json["messages"] else { return [try message(from: json)] }
            guard let items = list.arrayValue, !items.isEmpty else { throw .badRequest("messages must be a non-empty array") }
            var messages: [Message] = []
            messages.reserveCapacity(items.count)
            for item in items { messages.append(try message(from: item)) }
            return messages
        }
    }

    static func message(from json: JSONValue) throws(HTTPError) -> Message {
        guard case .object = json else { throw .badRequest("a message must be a JSON object with channel and message") }
        guard let channel = json["channel"]?.nameValue, !channel.isEmpty else {
            throw .badRequest("channel must be a non-empty string")
        }
        guard let body = json["message"] else { throw .badRequest("message is missing") }
        var sharded = false
        if let flag = json["sharded"] {
            guard let value = flag.boolValue else { throw .badRequest("sharded must be true or false") }
            sharded = value
        }
        return Message(channel: channel, payload: payload(of: body), sharded: sharded)
    }

    /// A string is published as its UTF-8 bytes; any other JSON value as its compact text.
    static func payload(of value: JSONValue) -> [UInt8] {
        if let text = value.stringValue { return Array(text.utf8) }
        return value.serialized
    }

    static func answer(_ channel: RedisName, _ receivers: Int) -> [UInt8] {
        var json = JSONWriter()
        json.object {
            $0.field("channel", channel)
            $0.field("receivers", receivers)
        }
        return json.bytes
    }

    /// `{"results":[...]}`: 200 when every message was published, else the first failure's status.
    static func batchAnswer(_ messages: [Message], _ results: [Result<Int, HTTPError>]) -> HTTPResponse {
        var status = 200
        var json = JSONWriter()
        json.object { o in
            o.field(
                "results",
                objects: zip(messages, results).map { message, result in
                    { item in
                        item.field("channel", message.channel)
                        switch result {
                        case .success(let receivers): item.field("receivers", receivers)
                        case .failure(let error):
                            if status == 200 { status = error.status }
                            item.field("error", error.code)
                            item.field("message", error.message)
                        }
                    }
                })
        }
        return .json(status, json.string)
    }
}
