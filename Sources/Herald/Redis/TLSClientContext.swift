// The TLS settings of Herald's rediss:// links: one OpenSSL SSL_CTX built at start from
// --redis-ca, --redis-cert, --redis-key and --redis-tls-verify, shared by every loop. A bad file
// is refused there, with OpenSSL's reason, so a misconfigured Herald does not start.
import COpenSSL
import Glibc

/// One SSL_CTX for every Redis link of the process.
public final class TLSClientContext: Equatable, @unchecked Sendable {
    // @unchecked Sendable: the SSL_CTX is set up in `init` and only read afterwards; OpenSSL
    // allows SSL objects to be made from one SSL_CTX on many threads at once.
    let context: OpaquePointer
    /// Whether the server's certificate chain and name are checked (off only by
    /// `--redis-tls-verify off`).
    public let verifies: Bool

    /// - Parameters:
    ///   - caFile: a PEM bundle of the CAs to trust; nil trusts the system's store.
    ///   - certFile, keyFile: a PEM client certificate (chain) and its key, for mutual TLS.
    /// - Throws: `ConfigError` naming the option whose file cannot be used, and why.
    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, verify: Bool = true) throws(ConfigError) {
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw ConfigError("--redis", "rediss://", "OpenSSL could not make a TLS context: \(Self.lastError())")
        }
        self.context = context
        verifies = verify
        _ = herald_ssl_ctx_set_min_proto_version(context, TLS1_2_VERSION)
        // Writes take hiredis's output buffer as it stands: a write may send part of it, and a
        // retry may pass it again from a new address once more commands were appended.
        _ = herald_ssl_ctx_set_mode(
            context, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS))
        // A Redis that drops the TCP connection without close_notify is a closed link, not an
        // error to decode.
        herald_ssl_ctx_ignore_unexpected_eof(context)
        SSL_CTX_set_verify(context, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nil)
        if let caFile {
            try Self.readable("--redis-ca", caFile)
            ERR_clear_error()
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw ConfigError("--redis-ca", caFile, "not a PEM CA bundle: \(Self.lastError())")
            }
        } else {
            SSL_CTX_set_default_verify_paths(context)
        }
        switch (certFile, keyFile) {
        case (nil, nil):
            break
        case (let certFile?, let keyFile?):
            try Self.readable("--redis-cert", certFile)
            try Self.readable("--redis-key", keyFile)
            ERR_clear_error()
            guard SSL_CTX_use_certificate_chain_file(context, certFile) == 1 else {
                throw ConfigError("--redis-cert", certFile, "not a PEM certificate: \(Self.lastError())")
            }
            guard SSL_CTX_use_PrivateKey_file(context, keyFile, SSL_FILETYPE_PEM) == 1 else {
                throw ConfigError("--redis-key", keyFile, "not the PEM private key of --redis-cert: \(Self.lastError())")
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw ConfigError("--redis-key", keyFile, "does not match --redis-cert: \(Self.lastError())")
            }
        case (nil, let keyFile?):
            throw ConfigError("--redis-key", keyFile, "needs --redis-cert (HERALD_REDIS_CERT) too")
        case (let certFile?, nil):
            throw ConfigError("--redis-cert", certFile, "needs --redis-key (HERALD_REDIS_KEY) too")
        }
    }

    deinit { SSL_CTX_free(context) }

    /// The settings of a rediss:// link when no option changed them: the system's CAs,
    /// verification on, no client certificate. Built on first use.
    public static let systemDefault: TLSClientContext = {
        do { return try TLSClientContext() } catch { fatalError("\(error)") }
    }()

    public static func == (a: TLSClientContext, b: TLSClientContext) -> Bool { a === b }

    /// Refuses a file that cannot be opened, with the system's reason (OpenSSL's is vaguer).
    private static func readable(_ option: String, _ path: String) throws(ConfigError) {
        guard let file = fopen(path, "r") else { throw ConfigError(option, path, String(cString: strerror(errno))) }
        fclose(file)
    }

    /// The reason of the first OpenSSL error queued on this thread (the innermost, most
    /// specific one, e.g. "no certificate or crl found"); empties the queue.
    static func lastError() -> String {
        let last = ERR_get_error()
        ERR_clear_error()
        guard last != 0 else { return "unknown error" }
        if let reason = ERR_reason_error_string(last) { return String(cString: reason) }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(last, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
