// Streams over HTTP: `POST /streams/{key}` appends (XADD), `GET /streams/{key}` reads a range
// (XRANGE) by ids, Unix times in ms or ISO-8601 times.

enum StreamsAPI {
    /// Largest `count` one GET may ask for.
    static let maxCount = 10_000

    static func key(_ request: HTTPRequest, _ responder: Responder) -> String? {
        let encoded = request.path.dropFirst("/streams/".count)
        guard let name = PercentDecoding.decode(encoded), !name.isEmpty, UTF8Validation.isValid(name) else {
            responder.fail(.badRequest("the stream key in the path is empty or badly encoded"))
            return nil
        }
        return String(decoding: name, as: UTF8.self)
    }

    static func append(_ request: HTTPRequest, _ responder: Responder, _ grant: Grant) {
        guard let key = key(request, responder) else { return }
        guard grant.mayPublish(key) else {
            responder.fail(AccessPolicy.forbidden("appending to \(key)"))
            return
        }
        guard let query = PercentDecoding.query(request.query) else {
            responder.fail(.badRequest("the query string is badly encoded"))
            return
        }
        var arguments: [[UInt8]] = .command("XADD", key)
        if let maxlen = query.last(where: { $0.name == "maxlen" })?.value {
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
            for name in fields.keys.sorted() {
                arguments.append(Array(name.utf8))
                arguments.append(PublishAPI.payload(of: fields[name]!))
            }
        } else {
            arguments += [Array("data".utf8), request.body]
        }
        let redis = responder.worker.redis
        let sent = redis.send(key: Array(key.utf8), arguments) { reply in
            guard let id = reply.text, case .string = reply else {
                responder.fail(RedisErrors.httpError(reply, command: "XADD"))
                return
            }
            var json = JSONWriter()
            json.object {
                $0.field("stream", key)
                $0.field("id", id)
            }
            responder.respond(.json(200, json.string))
        }
        if !sent { responder.fail(RedisErrors.unreachable(redis)) }
    }

    static func range(_ request: HTTPRequest, _ responder: Responder, _ grant: Grant) {
        guard let key = key(request, responder) else { return }
        guard grant.maySubscribe(key) else {
            responder.fail(AccessPolicy.forbidden("reading \(key)"))
            return
        }
        guard let query = PercentDecoding.query(request.query) else {
            responder.fail(.badRequest("the query string is badly encoded"))
            return
        }
        func value(_ name: String) -> String? { query.last { $0.name == name }?.value }
        var start = "-"
        var end = "+"
        if let from = value("from"), !from.isEmpty {
            switch StreamPosition.parse(from) {
            case .after(let id)?: start = id == .zero ? "-" : "(\(id)"
            case .time(let ms)?: start = String(ms)
            case .newOnly?, nil:
                responder.fail(HTTPError(status: 400, code: "bad_id", message: "from must be an entry id, a Unix time in ms or an ISO-8601 time, not '\(from)'"))
                return
            }
        }
        if let to = value("to"), !to.isEmpty {
            if to.contains("-"), !to.contains("T"), let id = StreamID(to) {
                end = id.description
            } else if let ms = UInt64(to) ?? ISOTime.milliseconds(to) {
                end = String(ms)
            } else {
                responder.fail(HTTPError(status: 400, code: "bad_id", message: "to must be an entry id, a Unix time in ms or an ISO-8601 time, not '\(to)'"))
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
        let redis = responder.worker.redis
        let sent = redis.send(key: Array(key.utf8), .command("XRANGE", key, start, end, "COUNT", String(count))) { reply in
            guard case .array = reply else {
                responder.fail(RedisErrors.httpError(reply, command: "XRANGE"))
                return
            }
            let entries = StreamEntry.list(reply, stream: key)
            var json = JSONWriter(capacity: 64 + entries.count * 64)
            json.object { o in
                o.field("stream", key)
                var list: [UInt8] = [UInt8(ascii: "[")]
                for (i, entry) in entries.enumerated() {
                    if i > 0 { list.append(UInt8(ascii: ",")) }
                    list += entry.envelope()
                }
                list.append(UInt8(ascii: "]"))
                o.field("entries", json: list)
            }
            responder.respond(.json(200, json.string))
        }
        if !sent { responder.fail(RedisErrors.unreachable(redis)) }
    }
}
