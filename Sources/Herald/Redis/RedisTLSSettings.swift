// The TLS options of rediss:// links as the command line and environment gave them; at start
// they become one TLSClientContext that every endpoint carries (Config.resolve).

/// --redis-ca, --redis-cert, --redis-key and --redis-tls-verify.
public struct RedisTLSSettings: Equatable, Sendable {
    /// PEM CA bundle; nil trusts the system's store.
    public var caFile: String?
    /// PEM client certificate (chain) and key, for mutual TLS.
    public var certFile: String?
    public var keyFile: String?
    /// Check the server's certificate chain and name (off only when asked, with a warning).
    public var verify = true

    public init() {}

    /// Whether any option was set (they mean nothing without a rediss:// URL).
    public var isSet: Bool { caFile != nil || certFile != nil || keyFile != nil || !verify }

    /// Builds the TLS context of `endpoints` when they use TLS, loading (and so checking) the
    /// files now, so a bad one stops Herald at start with the reason.
    /// - Throws: `ConfigError` for an unreadable or invalid file, a certificate without its key
    ///   (or the reverse), or TLS options given for plain redis:// URLs.
    func attach(to endpoints: inout [RedisEndpoint]) throws(ConfigError) {
        guard endpoints.contains(where: \.tls) else {
            guard !isSet else {
                let option = caFile != nil ? "--redis-ca" : certFile != nil ? "--redis-cert" : keyFile != nil ? "--redis-key" : "--redis-tls-verify"
                throw ConfigError(option, caFile ?? certFile ?? keyFile ?? "off", "applies only to rediss:// URLs (TLS), and --redis has none")
            }
            return
        }
        guard isSet else { return }
        let context = try TLSClientContext(caFile: caFile, certFile: certFile, keyFile: keyFile, verify: verify)
        for i in endpoints.indices { endpoints[i].tlsContext = context }
    }
}
