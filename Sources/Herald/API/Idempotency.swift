// Idempotent writes (the IETF `Idempotency-Key` header, as Stripe and Ably use it): a client
// that retries a publish, append or push after a lost answer must not publish, append or push
// twice. The first request does the work and keeps its replies in Redis for
// `--idempotency-ttl`, in one Lua script with the work itself, so a retry racing the first
// request finds either nothing (and does the work) or the kept replies (and does none). The
// answer is rebuilt from the kept replies, so a retry gets the same status and body, plus
// `Idempotent-Replayed: true`; the same key with another request is `422`.
import Crypto

extension HTTPResponse {
    /// Marks an answer given from kept replies (readable by pages of other origins too).
    mutating func markReplayed() {
        headers.append(("Idempotent-Replayed", "true"))
        headers.append(("Access-Control-Expose-Headers", "Idempotent-Replayed"))
    }
}

/// One write's idempotency: the client's key and what the request it names looked like.
struct IdempotentWrite {
    /// The client's key, 1-128 printable ASCII characters.
    let key: String
    /// SHA-256 of what the request asked (method, target, content type, body), as hex: a retry
    /// must ask the same.
    let fingerprint: String

    static let maxKeyLength = 128
    /// The header's name, as the parser stores it.
    static let header = "idempotency-key"

    /// The header's key, when the request has one; a malformed one is a 400.
    static func from(_ request: HTTPRequest) -> Result<IdempotentWrite?, HTTPError> {
        guard request.header(header) != nil else { return .success(nil) }
        let values = request.headers.filter { $0.name == header }
        guard let value = values.first?.value else { return .success(nil) }
        guard values.count == 1 else { return .failure(.badIdempotencyKey("give one Idempotency-Key header, not \(values.count)")) }
        return validated(value).map { key in
            var hasher = SHA256()
            for part in [request.method, request.target, request.header("content-type") ?? ""] {
                hasher.update(data: Array(part.utf8))
                hasher.update(data: [0])
            }
            hasher.update(data: request.body)
            return IdempotentWrite(key: key, fingerprint: hex(hasher.finalize()))
        }
    }

    /// An op's `idempotency_key` (WebSocket publish): the fingerprint covers the op's fields.
    static func from(op json: JSONValue, fields: [String]) -> Result<IdempotentWrite?, HTTPError> {
        guard let value = json["idempotency_key"] else { return .success(nil) }
        guard let text = value.stringValue else { return .failure(.badIdempotencyKey("idempotency_key must be a string")) }
        return validated(text).map { key in
            var hasher = SHA256()
            for field in fields {
                hasher.update(data: Array(field.utf8))
                hasher.update(data: [0])
                hasher.update(data: json[field]?.serialized ?? [])
                hasher.update(data: [0])
            }
            return IdempotentWrite(key: key, fingerprint: hex(hasher.finalize()))
        }
    }

    private static func validated(_ key: String) -> Result<String, HTTPError> {
        let bytes = key.utf8
        guard (1...maxKeyLength).contains(bytes.count) else {
            return .failure(.badIdempotencyKey("an Idempotency-Key is 1 to \(maxKeyLength) characters, not \(bytes.count)"))
        }
        guard bytes.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            return .failure(.badIdempotencyKey("an Idempotency-Key holds printable ASCII characters only"))
        }
        return .success(key)
    }

    private static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Where the kept replies live: in the slot of `slotOf` (the stream, queue or shard channel
    /// written, so the script's keys share it), under the write's `scope` (`publish`, `stream`,
    /// `queue`) and target, the client's key last. Length-prefixed: no two writes share a key.
    func redisKey(scope: String, target: String, slotOf: String) -> [UInt8] {
        Array((InternalKeys.prefix + "idempotency:" + QueueKeys.scope(slotOf) + ":\(scope):\(target.utf8.count):\(target):" + key).utf8)
    }

    /// The EVAL that does `commands` unless this key was used, keeping their replies for `ttlMs`.
    /// `keys` are the keys the commands write (declared for a cluster's routing).
    func command(redisKey: [UInt8], commands: [[[UInt8]]], keys: [[UInt8]], ttlMs: Int64) -> [[UInt8]] {
        var arguments: [[UInt8]] = [Array("EVAL".utf8), Self.script, Array(String(1 + keys.count).utf8), redisKey]
        arguments += keys
        arguments += [Array(fingerprint.utf8), Array(String(ttlMs).utf8), Array(String(commands.count).utf8)]
        for command in commands {
            arguments.append(Array(String(command.count).utf8))
            arguments += command
        }
        return arguments
    }

    /// What the script answered.
    enum Outcome {
        /// The commands ran now; their replies.
        case done([RedisReply])
        /// A request with this key ran before; its replies.
        case replayed([RedisReply])
        /// The key was used for another request.
        case reused
    }

    /// Reads the script's reply; nil when it is not one (an error reply: the work failed and
    /// nothing was kept).
    static func outcome(_ reply: RedisReply) -> Outcome? {
        guard case .array(let parts) = reply, let state = parts.first?.integer else { return nil }
        if state == 2 { return .reused }
        guard parts.count == 2, let kept = parts[1].bytes else { return nil }
        var replies: [RedisReply] = []
        for line in kept.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) where !line.isEmpty {
            let value = Array(line.dropFirst())
            switch line.first {
            case UInt8(ascii: "i"):
                guard let n = Int(String(decoding: value, as: UTF8.self)) else { return nil }
                replies.append(.integer(n))
            case UInt8(ascii: "s"):
                replies.append(.string(value))
            default:
                return nil
            }
        }
        return state == 1 ? .replayed(replies) : .done(replies)
    }

    /// KEYS[1] keeps `<fingerprint>` + the replies (`i<n>` or `s<text>`, one per line); ARGV is
    /// the fingerprint, the TTL in ms, the number of commands, then each command's argument
    /// count and arguments. Answers {0, replies} (done now), {1, replies} (kept), {2} (reused).
    /// A command that fails aborts the script with its error, keeping nothing.
    static let script = Array(
        """
        local kept = redis.call('GET', KEYS[1])
        if kept then
          if string.sub(kept, 1, 64) ~= ARGV[1] then return {2} end
          return {1, string.sub(kept, 65)}
        end
        local i = 4
        local out = {}
        for c = 1, tonumber(ARGV[3]) do
          local argc = tonumber(ARGV[i])
          local args = {}
          for a = 1, argc do args[a] = ARGV[i + a] end
          i = i + argc + 1
          local ok, r = pcall(redis.call, unpack(args))
          if not ok then return redis.error_reply(r.err or tostring(r)) end
          if type(r) == 'number' then out[#out + 1] = 'i' .. r
          elseif type(r) == 'table' and r.ok then out[#out + 1] = 's' .. r.ok
          else out[#out + 1] = 's' .. tostring(r) end
        end
        local replies = table.concat(out, '\\n')
        redis.call('SET', KEYS[1], ARGV[1] .. replies, 'PX', ARGV[2])
        return {0, replies}
        """.utf8)
}
