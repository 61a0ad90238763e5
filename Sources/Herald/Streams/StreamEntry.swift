// One stream entry on its way to clients, its envelope encoded once for all of them.
import FoundationEssentials

/// An entry read from Redis (XRANGE, XREAD, XREADGROUP, XAUTOCLAIM).
public final class StreamEntry {
    public let stream: RedisName
    public let id: StreamID
    /// Field/value pairs in Redis order.
    public let fields: [([UInt8], [UInt8])]

    public init(stream: RedisName, id: StreamID, fields: [([UInt8], [UInt8])]) {
        self.stream = stream
        self.id = id
        self.fields = fields
    }

    /// Entries from a reply shaped `[[id, [f, v, ...]], ...]`; nil entries (deleted while
    /// pending, as XREADGROUP reports them) are kept with no fields.
    public static func list(_ reply: RedisReply, stream: RedisName) -> [StreamEntry] {
        guard case .array(let items) = reply else { return [] }
        return items.compactMap { item in
            guard case .array(let pair) = item, pair.count == 2, let idText = pair[0].text, let id = StreamID(idText) else { return nil }
            var fields: [([UInt8], [UInt8])] = []
            if case .array(let flat) = pair[1] {
                var i = 0
                while i + 1 < flat.count {
                    fields.append((flat[i].bytes ?? [], flat[i + 1].bytes ?? []))
                    i += 2
                }
            }
            return StreamEntry(stream: stream, id: id, fields: fields)
        }
    }

    /// `{"type":"entry","stream":..,"id":..,"fields":{..}}`; values that are not UTF-8 are
    /// base64-encoded and the entry says `"encoding":"base64"`.
    public func envelope(group: RedisName? = nil) -> [UInt8] {
        let binary = fields.contains { !UTF8Validation.isValid($0.0) || !UTF8Validation.isValid($0.1) }
        var json = JSONWriter(capacity: 64 + fields.reduce(0) { $0 + $1.0.count + $1.1.count + 6 })
        json.object { o in
            o.field("type", "entry")
            o.field("stream", stream)
            if let group { o.field("group", group) }
            o.field("id", id.description)
            var inner = JSONWriter()
            inner.object { f in
                for (name, value) in fields {
                    if binary {
                        f.field(Data(name).base64EncodedString(), Data(value).base64EncodedString())
                    } else {
                        f.field(String(decoding: name, as: UTF8.self), utf8: value)
                    }
                }
            }
            o.field("fields", json: inner.bytes)
            if binary { o.field("encoding", "base64") }
        }
        return json.bytes
    }

    /// The envelope as a WebSocket text frame, shared by every live reader of the stream.
    public private(set) lazy var frame = Chunk.of(FrameEncoder.encode(.text, envelope()))

    /// The envelope as a Server-Sent Event whose `id:` is the entry id, so a browser's
    /// automatic reconnect resumes right after it (Last-Event-ID).
    public private(set) lazy var event = Chunk.of(EventStream.event(data: envelope(), id: id.description))
}

extension WireForm {
    /// A stream entry in this form, encoded once for all its readers.
    public func entry(_ entry: StreamEntry) -> Chunk {
        switch self {
        case .webSocket: entry.frame
        case .eventStream: entry.event
        }
    }
}
