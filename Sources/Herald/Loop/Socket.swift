// Thin wrappers over the POSIX socket calls client connections need: listening sockets with
// SO_REUSEPORT, non-blocking accept, read, writev, shutdown, the peer's address. (Redis links
// connect through hiredis, and `herald healthcheck` opens its one blocking probe socket itself.)
import CHiredis
import Glibc

/// Namespace for the socket calls used by the event loops.
public enum Socket {
    /// Opens a non-blocking TCP listener on `host:port`. With `reusePort`, every event loop binds
    /// its own listener to the same port and the kernel spreads new connections across them.
    public static func listen(host: String, port: Int, reusePort: Bool, backlog: Int32 = 1024) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            throw SocketError("getaddrinfo(\(host))", code: rc == EAI_SYSTEM ? errno : EINVAL)
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = SocketError("bind(\(host):\(port))")
            Glibc.close(fd)
            throw error
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = SocketError("listen")
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Accepts one pending connection as a non-blocking socket with TCP_NODELAY set and a send
    /// buffer of `sendBuffer` bytes (the kernel doubles it), so a stalled client cannot park
    /// megabytes in kernel memory beyond Herald's own bounded queue.
    /// Returns nil when no connection is pending (EAGAIN); throws on real failures (EMFILE...).
    public static func accept(_ listener: Int32, sendBuffer: Int32) throws -> Int32? {
        let fd = herald_accept_nonblocking(listener)
        if fd < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED { return nil }
            throw SocketError("accept")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var size = sendBuffer
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    /// The result of one non-blocking read.
    public enum ReadResult {
        case bytes(Int)
        case wouldBlock
        case closed
        case failed(SocketError)
    }

    /// Reads into `buffer`; never blocks.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
            return .failed(SocketError("read"))
        }
    }

    /// Whether the peer has closed (or reset) the connection, as far as the kernel knows now,
    /// looked at without consuming input (a byte of unread input reads as still open).
    public static func peerHasClosed(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n >= 0 { return n == 0 }
            if errno == EINTR { continue }
            return errno != EAGAIN && errno != EWOULDBLOCK
        }
    }

    /// Writes the gathered buffers; returns bytes written, 0 when the socket would block.
    public static func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>, count: Int32) -> Result<Int, SocketError> {
        while true {
            // One buffer: plain write(2) skips the kernel's iovec import (most flushes are one).
            let n = count == 1 ? Glibc.write(fd, iov.pointee.iov_base, iov.pointee.iov_len) : Glibc.writev(fd, iov, count)
            if n >= 0 { return .success(n) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .success(0) }
            return .failure(SocketError("writev"))
        }
    }

    /// Stops writing without closing the descriptor: the peer reads end of stream (FIN) after
    /// what was already written, and Herald can still read (a lingering close).
    public static func shutdownWrite(_ fd: Int32) {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Whether `host` names this machine's loopback interface (by address or as localhost).
    public static func isLoopback(host: String) -> Bool {
        ["127.0.0.1", "::1", "[::1]", "localhost"].contains(host) || host.hasPrefix("127.")
    }

    /// Reads and drops what the peer sent and Herald did not read (at most a few buffers: the
    /// kernel's receive buffer is bounded), so that closing sends FIN rather than a reset.
    public static func discardInput(_ fd: Int32, scratch: UnsafeMutableRawBufferPointer) {
        for _ in 0..<64 {
            guard case .bytes = read(fd, into: scratch) else { return }
        }
    }

    /// The peer's numeric address and port (`203.0.113.7:51234`, `[::1]:51234`); empty when
    /// the socket has none.
    public static func peerAddress(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard named == 0 else { return "" }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var port = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &port, socklen_t(port.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return "" }
        let address = String(cString: host)
        return (address.contains(":") ? "[\(address)]" : address) + ":" + String(cString: port)
    }

    public static func close(_ fd: Int32) {
        Glibc.close(fd)
    }
}
