// Where the backend's authorization hook listens: `--hook-url http://host[:port]/path`. Plain
// HTTP to a backend on the same private network (TLS would be terminated in front of a public
// one); the host is resolved once at start, as a lookup would block the loop.
import Glibc

/// The backend's hook endpoint, parsed from the URL.
public struct HookTarget: Equatable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    /// The request target, with any query: `/auth/herald?v=1`.
    public let path: String

    public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)" }

    /// Parses `http://host[:port][/path]`.
    public static func parse(_ url: String) throws(ConfigError) -> HookTarget {
        func bad(_ why: String) -> ConfigError { ConfigError("--hook-url", url, why) }
        guard url.hasPrefix("http://") else {
            throw bad(
                url.hasPrefix("https://")
                    ? "https is not supported: terminate TLS in front of the backend, or reach it over the private network" : "the URL must start with http://")
        }
        let rest = url.dropFirst("http://".count)
        let slash = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<slash]
        var path = String(rest[slash...])
        if path.isEmpty { path = "/" }
        if path.hasPrefix("?") { path = "/" + path }
        guard !authority.contains("@") else { throw bad("credentials in the URL are not supported") }
        guard path.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "#") }) else { throw bad("the path has spaces, controls or a fragment") }
        var host: String
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw bad("unterminated IPv6 address") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            authority = authority[authority.index(after: close)...]
            if authority.hasPrefix(":") {
                port = try portNumber(authority.dropFirst(), bad)
            } else if !authority.isEmpty {
                throw bad("junk after the address")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = try portNumber(authority[authority.index(after: colon)...], bad)
        } else {
            host = String(authority)
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "/") }) else { throw bad("the host is missing or malformed") }
        return HookTarget(host: host, port: port, path: path)
    }

    private static func portNumber(_ text: Substring, _ bad: (String) -> ConfigError) throws(ConfigError) -> Int {
        guard let p = Int(text), (1...65535).contains(p) else { throw bad("the port must be 1-65535") }
        return p
    }

    /// The `Host` header's value.
    var hostHeader: String { (host.contains(":") ? "[\(host)]" : host) + (port == 80 ? "" : ":\(port)") }

    /// Looks the host up (blocking: call at start, not on a loop).
    public func resolve() throws -> HookAddress {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            let reason = rc == EAI_SYSTEM ? String(cString: strerror(errno)) : String(cString: gai_strerror(rc))
            throw HookFailure("the hook host \(host) does not resolve: \(reason)")
        }
        defer { freeaddrinfo(result) }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyMemory(from: UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen)))
        }
        return HookAddress(family: info.pointee.ai_family, storage: storage, length: info.pointee.ai_addrlen)
    }
}

/// A resolved socket address for hook connections.
public struct HookAddress: @unchecked Sendable {
    let family: Int32
    let storage: sockaddr_storage
    let length: socklen_t
}
