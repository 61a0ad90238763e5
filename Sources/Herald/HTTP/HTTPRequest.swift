// A parsed HTTP/1.x request: what the router and handlers see.

/// One complete request, head and body.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent, e.g. `/publish/news?sharded=true`.
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// Header fields in arrival order; names lowercased.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, target: String, minorVersion: Int = 1,
                headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }

    /// The path part of the target (still percent-encoded).
    public var path: Substring {
        if let q = target.firstIndex(of: "?") { return target[..<q] }
        return target[...]
    }

    /// The raw query string, without `?`.
    public var query: Substring {
        if let q = target.firstIndex(of: "?") { return target[target.index(after: q)...] }
        return ""
    }

    /// HTTP/1.1 keeps the connection open unless told otherwise; HTTP/1.0 only when asked.
    public var keepAlive: Bool {
        // Every Connection field counts (RFC 9110 §7.6.1): the options are their union.
        let connection = headers.filter { $0.name == "connection" }.map(\.value).joined(separator: ",").lowercased()
        if minorVersion == 0 { return connection.contains("keep-alive") }
        return !connection.split(separator: ",").contains { $0.trimmingCharacters(in: " ") == "close" }
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}
