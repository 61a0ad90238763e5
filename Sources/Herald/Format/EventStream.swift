// The Server-Sent Events wire format (HTML Living Standard §9.2): `data:` lines, an optional
// `id:` (which browsers send back as Last-Event-ID), `event:`, `retry:`, and comment heartbeats.
// Sans I/O: bytes out.

public enum EventStream {
    /// One event. Line breaks in `data` become several `data:` lines, as the format requires.
    public static func event(data: [UInt8], id: String? = nil, event: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 32)
        if let event { out += Array("event: \(event)\n".utf8) }
        if let id { out += Array("id: \(id)\n".utf8) }
        var line: [UInt8] = []
        var i = 0
        func flushLine() {
            out += Array("data: ".utf8)
            out += line
            out.append(10)
            line.removeAll(keepingCapacity: true)
        }
        while i < data.count {
            let byte = data[i]
            if byte == 10 || byte == 13 {
                flushLine()
                if byte == 13 && i + 1 < data.count && data[i + 1] == 10 { i += 1 }
            } else {
                line.append(byte)
            }
            i += 1
        }
        flushLine()
        out.append(10)
        return out
    }

    /// Tells the browser how long to wait before reconnecting, ms.
    public static func retry(_ ms: Int) -> [UInt8] { Array("retry: \(ms)\n\n".utf8) }

    /// A comment line that keeps proxies and browsers from timing the stream out.
    public static let heartbeat: [UInt8] = Array(": ping\n\n".utf8)
}
