// One rediss:// link's TLS session over its non-blocking socket (OpenSSL). The link's loop drives
// it: the handshake after the TCP connect, then reads and writes that may each want the other
// direction (a TLS 1.3 key update read may need a write; a write may need a read).
import COpenSSL
import Glibc

/// A TLS client session on one socket; confined to the loop of the link that owns it.
final class TLSSession {
    /// What a handshake step or a read or write that made no progress is waiting for.
    enum Wait { case readable, writable }

    enum HandshakeResult {
        case done
        case waiting(Wait)
        case failed(String)
    }

    enum ReadResult {
        case bytes(Int)
        case wouldBlock
        case closed
        case failed(String)
    }

    enum WriteResult {
        case wrote(Int)
        case waiting(Wait)
        case failed(String)
    }

    private let ssl: OpaquePointer
    /// The end (close or failure) met by a read that had already filled some of the buffer:
    /// told by the next read.
    private var deferredEnd: ReadResult?
    /// The last read stopped because OpenSSL must write first (the socket's send buffer is full).
    private(set) var readWantsWrite = false
    /// The last write stopped because OpenSSL must read first.
    private(set) var writeWantsRead = false

    /// Starts a client session on `fd` (already connected) for `host`: SNI for a name, and the
    /// name or IP address checked against the certificate when the context verifies.
    init(context: TLSClientContext, fd: Int32, host: String) throws(TLSFailure) {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw TLSFailure("SSL_new: \(TLSClientContext.lastError())") }
        self.ssl = ssl
        SSL_set_connect_state(ssl)
        guard SSL_set_fd(ssl, fd) == 1 else { throw TLSFailure("SSL_set_fd: \(TLSClientContext.lastError())") }
        let isAddress = Self.isIPAddress(host)
        // RFC 6066 §3: SNI carries a DNS name only, never an address literal.
        if !isAddress { _ = herald_ssl_set_tlsext_host_name(ssl, host) }
        if context.verifies {
            let set = isAddress ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) : SSL_set1_host(ssl, host)
            guard set == 1 else { throw TLSFailure("cannot check the certificate against \(host): \(TLSClientContext.lastError())") }
        }
    }

    deinit { SSL_free(ssl) }

    /// One step of the handshake; call again when the socket is as `.waiting` says.
    func handshake() -> HandshakeResult {
        ERR_clear_error()
        let n = SSL_connect(ssl)
        if n == 1 { return .done }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ: return .waiting(.readable)
        case SSL_ERROR_WANT_WRITE: return .waiting(.writable)
        default:
            let verdict = SSL_get_verify_result(ssl)
            if verdict != Int(X509_V_OK) {
                return .failed("TLS handshake failed: certificate verify failed: \(String(cString: X509_verify_cert_error_string(verdict)))")
            }
            let why = reason(of: n)
            return .failed("TLS handshake failed: " + (why.isEmpty ? "Redis closed the connection" : why))
        }
    }

    /// Reads into `buffer` record after record until it is full or OpenSSL needs the socket, so a
    /// short count means nothing is left decrypted in OpenSSL (epoll will report what comes next).
    func read(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        if let end = deferredEnd { return end }
        readWantsWrite = false
        var total = 0
        while total < buffer.count {
            ERR_clear_error()
            let n = SSL_read(ssl, buffer.baseAddress! + total, Int32(min(buffer.count - total, Int(Int32.max))))
            if n > 0 {
                total += Int(n)
                continue
            }
            let end: ReadResult
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ:
                return total > 0 ? .bytes(total) : .wouldBlock
            case SSL_ERROR_WANT_WRITE:
                readWantsWrite = true
                return total > 0 ? .bytes(total) : .wouldBlock
            case SSL_ERROR_ZERO_RETURN:
                end = .closed
            default:
                let why = reason(of: n)
                end = why.isEmpty ? .closed : .failed("TLS: \(why)")
            }
            if total == 0 { return end }
            deferredEnd = end
            return .bytes(total)
        }
        return .bytes(total)
    }

    /// Whether OpenSSL holds something a read would return now without the socket being
    /// readable: decrypted bytes the last read had no room for, or an end it has not told.
    var hasBufferedInput: Bool { deferredEnd != nil || SSL_pending(ssl) > 0 }

    /// Writes from `bytes` (up to `count`); what is written is a prefix of them. A retry after
    /// `.waiting` must pass at least the same bytes again (hiredis's buffer, appended to).
    func write(_ bytes: UnsafeRawPointer, count: Int) -> WriteResult {
        writeWantsRead = false
        ERR_clear_error()
        let n = SSL_write(ssl, bytes, Int32(min(count, Int(Int32.max))))
        if n > 0 { return .wrote(Int(n)) }
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_WRITE: return .waiting(.writable)
        case SSL_ERROR_WANT_READ:
            writeWantsRead = true
            return .waiting(.readable)
        default:
            let why = reason(of: n)
            return .failed(why.isEmpty ? "Redis closed the connection" : "TLS: \(why)")
        }
    }

    /// Why the call that returned `n` failed: OpenSSL's reason (e.g. "tlsv13 alert certificate
    /// required", "wrong version number"), the system's for a socket error, or empty for a
    /// plain end of the connection.
    private func reason(of n: Int32) -> String {
        let saved = errno
        let kind = SSL_get_error(ssl, n)
        if ERR_peek_error() != 0 { return TLSClientContext.lastError() }
        switch kind {
        case SSL_ERROR_ZERO_RETURN:
            return ""
        case SSL_ERROR_SYSCALL:
            return saved != 0 ? String(cString: strerror(saved)) : ""
        default:
            return "SSL error \(kind)"
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// Why a TLS session could not be started.
struct TLSFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
