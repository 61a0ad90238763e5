// Streams over HTTP: `POST /streams/{key}` appends (XADD), `GET /streams/{key}` reads a range
// (XRANGE) by ids, Unix times in ms or ISO-8601 times.

enum StreamsAPI {
    /// Largest `count` one GET may ask for.
    static let maxCount = 10_000

    static func append(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ redis: CommandSender, _ pool: BlockingPool) {
        guard let target = KeyedRequest.stream(request, responder, caller, access: .write) else { return }
        let key = target.name
        guard let (wait, once) = target.writeOptions(request, responder) else { return }
        var arguments: [[UInt8]] = .command("XADD", key)
        if let maxlen = target.value("maxlen") {
            guard let n = Int(maxlen), n >= 0 else {
                responder.fail(.badRequest("maxlen must be a whole number, not '\(maxlen)'"))
                return
            }
            arguments += .command("MAXLEN", "~", String(n))
        }
        arguments.append(Array("*".utf8))
        let isJSON = request.header("content-type")?.lowercased().hasPrefix("application/json") ?? false
        if isJSON {
            guard case .object(let fields)? = try? JSONValue.parse(request.body), !fields.isEmpty else {
                responder.fail(.badRequest("a JSON body must be a non-empty object of fields"))
                return
            }
            for name in fields.keys {
                arguments.append(Array(name.utf8))
                arguments.append(PublishAPI.payload(of: fields[name]!))
            }
        } else {
            arguments += [Array("data".utf8), request.body]
        }
        caller.afterHook(.publish, kind: "stream", names: [key], verb: "appending to", responder) {
            responder.runWrite(
                arguments, key: target.key, wait: wait, once: once, scope: "stream", target: key.text, ttlMs: caller.idempotencyTtlMs,
                redis: redis, pool: pool
            ) { reply in
                guard case .string = reply, let id = reply.text else { return nil }
                return {
                    $0.field("stream", key)
                    $0.field("id", id)
                }
            }
        }
    }

    static func range(_ request: HTTPRequest, _ responder: Responder, _ caller: Caller, _ redis: CommandSender) {
        guard let target = KeyedRequest.stream(request, responder, caller, access: .read) else { return }
        let key = target.name
        let value = target.value
        var start = "-"
        var end = "+"
        if let from = value("from"), !from.isEmpty {
            switch StreamPosition.parse(from) {
            case .after(let id)?: start = id == .zero ? "-" : "(\(id)"
            case .time(let ms)?: start = String(ms)
            case .newOnly?, nil:
                responder.fail(.badID("from must be an entry id, a Unix time in ms or an ISO-8601 time, not '\(from)'"))
                return
            }
        }
        if let to = value("to"), !to.isEmpty {
            if to.contains("-"), !to.contains("T"), let id = StreamID(to) {
                end = id.description
            } else if let ms = UInt64(to) ?? ISOTime.milliseconds(to) {
                end = String(ms)
            } else {
                responder.fail(.badID("to must be an entry id, a Unix time in ms or an ISO-8601 time, not '\(to)'"))
                return
            }
        }
        var count = 100
        if let text = value("count") {
            guard let n = Int(text), (1...maxCount).contains(n) else {
                responder.fail(.badRequest("count must be between 1 and \(maxCount), not '\(text)'"))
                return
            }
            count = n
        }
        responder.run(.command("XRANGE", key, start, end, "COUNT", String(count)), key: target.key, on: redis) { reply in
            guard case .array = reply else { return nil }
            let entries = StreamEntry.list(reply, stream: key)
            var list: [UInt8] = [UInt8(ascii: "[")]
            for (i, entry) in entries.enumerated() {
                if i > 0 { list.append(UInt8(ascii: ",")) }
                list += entry.envelope()
            }
            list.append(UInt8(ascii: "]"))
            return .jsonObject {
                $0.field("stream", key)
                $0.field("entries", json: list)
            }
        }
    }
}
