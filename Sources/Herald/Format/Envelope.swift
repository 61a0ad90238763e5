// The JSON envelopes Herald sends to subscribers, all encoded here (like Webdis's formats/).
import FoundationEssentials

public enum Envelope {
    /// `{"type":"message","channel":..,"data":..}` and its pmessage/smessage siblings. Payloads
    /// that are not valid UTF-8 travel base64-encoded with `"encoding":"base64"`.
    public static func delivery(_ d: Delivery) -> [UInt8] {
        var json = JSONWriter(capacity: d.payload.count + d.channel.count + 48)
        json.object { o in
            switch d.kind {
            case .channel: o.field("type", "message")
            case .pattern:
                o.field("type", "pmessage")
                o.field("pattern", utf8: text(d.pattern ?? []))
            case .shard: o.field("type", "smessage")
            }
            o.field("channel", utf8: text(d.channel))
            if UTF8Validation.isValid(d.payload) {
                o.field("data", utf8: d.payload)
            } else {
                o.field("data", Data(d.payload).base64EncodedString())
                o.field("encoding", "base64")
            }
        }
        return json.bytes
    }

    /// Names from Redis are shown as text; invalid UTF-8 is replaced, never sent raw.
    private static func text(_ bytes: [UInt8]) -> [UInt8] {
        UTF8Validation.isValid(bytes) ? bytes : Array(String(decoding: bytes, as: UTF8.self).utf8)
    }

    /// An answer to a client: `{"type":type, ...fields, "id":id}`.
    public static func answer(_ type: String, id: JSONValue?, _ fields: (inout JSONWriter.ObjectWriter) -> Void = { _ in }) -> [UInt8] {
        var json = JSONWriter()
        json.object { o in
            o.field("type", type)
            fields(&o)
            if let id { o.field("id", json: id.serialized) }
        }
        return json.bytes
    }

    public static func subscribed(_ type: String, kind: SubscriptionKind, names: [String], id: JSONValue?) -> [UInt8] {
        answer(type, id: id) { o in
            o.field("kind", kind.rawValue)
            o.field("names", strings: names)
        }
    }

    public static func error(code: String, message: String, id: JSONValue? = nil) -> [UInt8] {
        answer("error", id: id) { o in
            o.field("code", code)
            o.field("message", message)
        }
    }

    /// `{"type":"error","code":..,"message":..,"key":..}`: a watched key could not be read.
    public static func watchError(_ error: HTTPError, key: [UInt8]) -> [UInt8] {
        answer("error", id: nil) { o in
            o.field("code", error.code)
            o.field("message", error.message)
            o.field("key", utf8: key)
        }
    }

    /// `{"type":"watching","keys":[..],"patterns":[..]}`: every snapshot value of a watch was
    /// sent; changes follow.
    public static func watching(_ type: String, keys: [RedisName], patterns: [RedisName], id: JSONValue?) -> [UInt8] {
        answer(type, id: id) { o in
            o.field("keys", names: keys)
            o.field("patterns", names: patterns)
        }
    }

    /// `{"type":"gap","kind":"watch","pattern":..}`: the link to Redis for a watched pattern
    /// was lost and is back; fresh values of its keys follow, ended by `watching`.
    public static func watchGap(pattern: [UInt8]) -> [UInt8] {
        answer("gap", id: nil) { o in
            o.field("kind", "watch")
            o.field("pattern", utf8: pattern)
        }
    }

    /// `{"type":"gap","kind":..,"channel":..}`: the link to Redis was lost and restored.
    public static func gap(kind: SubscriptionKind, name: String) -> [UInt8] {
        answer("gap", id: nil) { o in
            o.field("kind", kind.rawValue)
            o.field(kind == .pattern ? "pattern" : "channel", name)
        }
    }

    /// `{"type":"dropped","count":n}`: deliveries this client was too slow to take.
    public static func dropped(_ count: Int) -> [UInt8] {
        answer("dropped", id: nil) { $0.field("count", count) }
    }
}
