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

    public init(
        method: String, target: String, minorVersion: Int = 1,
        headers: [(name: String, value: String)] = [], body: [UInt8] = []
    ) {
        self.method = method
        self.target = target
        (path, query) = Self.split(target)
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = body
    }

    /// The first value of the header named `name`, which must be given in lowercase (the
    /// parser stores names lowercased; every caller asks with a literal). Every request asks
    /// for a few headers most do not carry (Origin, Host, Authorization): a length compare per
    /// field, no copy.
    public func header(_ name: String) -> String? {
        assert(!name.utf8.contains { $0 >= 65 && $0 <= 90 }, "header names are looked up in lowercase")
        return index(ofHeader: name).map { headers[$0].value }
    }

    /// The index of the first field named `lowercased` (names are stored lowercased).
    private func index(ofHeader lowercased: String) -> Int? {
        let length = lowercased.utf8.count
        for i in headers.indices where headers[i].name.utf8.count == length && headers[i].name == lowercased {
            return i
        }
        return nil
    }

    /// Path and query of the target. An absolute-form target (`http://host/path?query`,
    /// RFC 9112 §3.2.2, checked by the parser) gives the part after its authority, and "/" for
    /// an empty path.
    private static func split(_ target: String) -> (Substring, Substring) {
        var pathAndQuery = target[...]
        if target.utf8.first != UInt8(ascii: "/"), let slashes = target.utf8.firstRange(of: schemeEnd) {
            let start = target.utf8[slashes.upperBound...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }
            pathAndQuery = target[(start ?? target.endIndex)...]
        }
        guard let q = pathAndQuery.utf8.firstIndex(of: UInt8(ascii: "?")) else { return (pathAndQuery.isEmpty ? "/" : pathAndQuery, "") }
        let path = pathAndQuery[..<q]
        return (path.isEmpty ? "/" : path, pathAndQuery[pathAndQuery.utf8.index(after: q)...])
    }

    private static let schemeEnd = Array("://".utf8)

    /// HTTP/1.1 keeps the connection open unless told otherwise; HTTP/1.0 only when asked.
    /// Every Connection field counts (RFC 9110 §7.6.1): the options are their union.
    public var keepAlive: Bool {
        minorVersion == 0 ? connectionHas(Self.keepAliveToken) : !connectionHas(Self.closeToken)
    }

    /// Whether a Connection field lists `token` (lowercase letters and "-" only).
    public func connectionHas(_ token: [UInt8]) -> Bool {
        headers.contains { $0.name == "connection" && Self.hasToken(token, in: $0.value) }
    }

    private static let closeToken = Array("close".utf8)
    private static let keepAliveToken = Array("keep-alive".utf8)

    /// Whether the comma-separated list `value` holds `token` (ASCII case-insensitive, spaces
    /// and tabs around items ignored), without allocating.
    static func hasToken(_ token: [UInt8], in value: String) -> Bool {
        var rest = value.utf8[...]
        while !rest.isEmpty {
            var item = rest.prefix { $0 != UInt8(ascii: ",") }
            rest = rest.dropFirst(item.count + 1)
            while let first = item.first, first == 32 || first == 9 { item = item.dropFirst() }
            while let last = item.last, last == 32 || last == 9 { item = item.dropLast() }
            // `| 0x20` folds ASCII case; the tokens hold only lowercase letters and "-".
            if item.count == token.count && zip(item, token).allSatisfy({ $0 | 0x20 == $1 }) { return true }
        }
        return false
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
