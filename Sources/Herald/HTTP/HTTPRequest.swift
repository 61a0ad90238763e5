// A parsed HTTP/1.x request: what the router and handlers see.

/// One complete request, head and body.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent, e.g. `/publish/news?sharded=true`.
    public var target: String {
        didSet { (path, query) = Self.split(target) }
    }
    /// The path part of the target (still percent-encoded); split once, read by every layer.
    public private(set) var path: Substring
    /// The raw query string, without `?`.
    public private(set) var query: Substring
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    /// Header fields in arrival order; names lowercased.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, target: String, minorVersion: Int = 1,
                headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        (path, query) = Self.split(target)
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }

    private static func split(_ target: String) -> (Substring, Substring) {
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (target[...], "") }
        return (target[..<q], target[target.utf8.index(after: q)...])
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
