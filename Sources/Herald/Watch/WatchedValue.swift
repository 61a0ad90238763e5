// A watched key's value as read by WatchScript, and the JSON messages that tell it: pure, so
// unit tests drive it with replies.
import FoundationEssentials

/// What one read of a watched key found.
enum WatchedValue: Equatable {
    /// No such key.
    case none
    /// The value as JSON text (`value`), of `kind` (`string`, `hash`, `set`, `zset`, `list`,
    /// `stream`); `base64` when some of its strings are not UTF-8 and travel base64-encoded.
    case value(kind: String, json: [UInt8], base64: Bool)
    /// Over `--max-watch-value`: only its size (bytes, see WatchScript) is told.
    case truncated(kind: String, size: Int)
    /// A type Herald does not read (a module's, named as TYPE names it).
    case unsupported(kind: String)

    /// Reads WatchScript's reply; nil when it is not one.
    init?(reply: RedisReply) {
        guard case .array(let parts) = reply, let kind = parts.first?.text else { return nil }
        if parts.count == 1 {
            self = kind == "none" ? .none : .unsupported(kind: kind)
            return
        }
        guard let size = parts[1].integer else { return nil }
        guard parts.count == 3 else {
            self = .truncated(kind: kind, size: size)
            return
        }
        let body = parts[2]
        var strings: [[UInt8]] = []
        switch (kind, body) {
        case ("string", .string(let bytes)): strings = [bytes]
        case ("stream", .array(let entries)):
            for entry in entries {
                guard case .array(let pair) = entry, pair.count == 2, let id = pair[0].bytes, case .array(let fields) = pair[1] else {
                    return nil
                }
                strings.append(id)
                strings += fields.compactMap(\.bytes)
            }
        case (_, .array(let items)): strings = items.compactMap(\.bytes)
        default: return nil
        }
        let base64 = !strings.allSatisfy(UTF8Validation.isValid)
        guard let json = Self.json(kind: kind, body, base64: base64) else { return nil }
        self = .value(kind: kind, json: json, base64: base64)
    }

    /// The value as JSON: a string; a hash as an object (Redis's field order); a set as an
    /// array sorted by bytes (Redis's order is arbitrary); a sorted set as `[member, score]`
    /// pairs by score; a list in order; a stream's entries oldest first as
    /// `{"id":..,"fields":{..}}`.
    private static func json(kind: String, _ body: RedisReply, base64: Bool) -> [UInt8]? {
        var json = JSONWriter()
        func string(_ bytes: [UInt8]) {
            if base64 { json.string(Data(bytes).base64EncodedString()) } else { json.string(utf8: bytes) }
        }
        func object(_ flat: ArraySlice<RedisReply>) {
            json.raw("{")
            var i = flat.startIndex
            while i + 1 < flat.endIndex {
                if i > flat.startIndex { json.raw(",") }
                string(flat[i].bytes ?? [])
                json.raw(":")
                string(flat[i + 1].bytes ?? [])
                i += 2
            }
            json.raw("}")
        }
        func array(_ items: [[UInt8]]) {
            json.raw("[")
            for (i, item) in items.enumerated() {
                if i > 0 { json.raw(",") }
                string(item)
            }
            json.raw("]")
        }
        switch (kind, body) {
        case ("string", .string(let bytes)):
            string(bytes)
        case ("hash", .array(let items)):
            object(items[...])
        case ("set", .array(let items)):
            array(items.compactMap(\.bytes).sorted { $0.lexicographicallyPrecedes($1) })
        case ("list", .array(let items)):
            array(items.compactMap(\.bytes))
        case ("zset", .array(let items)):
            json.raw("[")
            var i = 0
            while i + 1 < items.count {
                if i > 0 { json.raw(",") }
                json.raw("[")
                string(items[i].bytes ?? [])
                json.raw(",")
                score(items[i + 1].bytes ?? [], into: &json)
                json.raw("]")
                i += 2
            }
            json.raw("]")
        case ("stream", .array(let entries)):
            json.raw("[")
            for (i, entry) in entries.reversed().enumerated() {
                guard case .array(let pair) = entry, case .array(let fields) = pair[1] else { return nil }
                if i > 0 { json.raw(",") }
                json.raw("{\"id\":")
                json.string(utf8: pair[0].bytes ?? [])
                json.raw(",\"fields\":")
                object(fields[...])
                json.raw("}")
            }
            json.raw("]")
        default:
            return nil
        }
        return json.bytes
    }

    /// A score as Redis formats it: a JSON number when it is one (`1`, `2.5`, `1e+20`), else
    /// a string (`inf`, `-inf`), which JSON has no number for.
    static func score(_ text: [UInt8], into json: inout JSONWriter) {
        if isJSONNumber(text) { json.raw(text) } else { json.string(utf8: text) }
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    static func isJSONNumber(_ text: [UInt8]) -> Bool {
        var i = 0
        func digits() -> Int {
            let start = i
            while i < text.count, (48...57).contains(text[i]) { i += 1 }
            return i - start
        }
        if i < text.count, text[i] == UInt8(ascii: "-") { i += 1 }
        guard i < text.count else { return false }
        if text[i] == UInt8(ascii: "0") { i += 1 } else if digits() == 0 { return false }
        if i < text.count, text[i] == UInt8(ascii: ".") {
            i += 1
            if digits() == 0 { return false }
        }
        if i < text.count, text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E") {
            i += 1
            if i < text.count, text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-") { i += 1 }
            if digits() == 0 { return false }
        }
        return i == text.count
    }

    /// The message that tells this value to a watcher: `snapshot` (a first read, or a fresh one
    /// after a lost link) tells a missing key as `kind` `none`; a change tells it as `deleted`,
    /// or `expired` when its time to live ran out.
    func message(key: [UInt8], snapshot: Bool, expired: Bool) -> [UInt8] {
        var json = JSONWriter(capacity: key.count + 64 + (self.json?.count ?? 0))
        json.object { o in
            switch self {
            case .none where !snapshot:
                o.field("type", expired ? "expired" : "deleted")
                o.field("key", utf8: key)
            case .none:
                o.field("type", "value")
                o.field("key", utf8: key)
                o.field("kind", "none")
                o.field("value", json: Array("null".utf8))
            case .value(let kind, let value, let base64):
                o.field("type", "value")
                o.field("key", utf8: key)
                o.field("kind", kind)
                o.field("value", json: value)
                if base64 { o.field("encoding", "base64") }
            case .truncated(let kind, let size):
                o.field("type", "value")
                o.field("key", utf8: key)
                o.field("kind", kind)
                o.field("truncated", true)
                o.field("size", size)
            case .unsupported(let kind):
                o.field("type", "value")
                o.field("key", utf8: key)
                o.field("kind", kind)
                o.field("unsupported", true)
            }
        }
        return json.bytes
    }

    private var json: [UInt8]? {
        if case .value(_, let json, _) = self { return json }
        return nil
    }
}
