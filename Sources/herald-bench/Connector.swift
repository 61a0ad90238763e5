// Non-blocking TCP connects to the gateway, optionally from a chosen loopback source address:
// binding each subscriber to one of 127.0.0.2..127.0.0.(k+1) gives every source address its own
// ephemeral port range, so tens of thousands of connections (and the TIME_WAITs of earlier
// runs) never run out of ports.
import Glibc
import Herald

enum Connector {
    /// IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind picks the port at connect time, per 4-tuple.
    private static let bindAddressNoPort: Int32 = 24
    /// TCP_NODELAY (netinet/tcp.h), which the Glibc module does not export.
    private static let tcpNoDelay: Int32 = 1
    /// SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC (bits/socket_type.h): spelled out because
    /// whether the Glibc module exports them depends on which module first includes the header.
    private static let streamNonBlockingCloseOnExec: Int32 = 1 | 0o4000 | 0o2000000

    /// An IPv4 address in network byte order, from its dotted text.
    static func address(_ text: String) -> in_addr? {
        var addr = in_addr()
        return inet_pton(AF_INET, text, &addr) == 1 ? addr : nil
    }

    /// The source address for subscriber `index` when spreading over `count` addresses.
    static func source(index: Int, count: Int) -> in_addr? {
        guard count > 0 else { return nil }
        let host = UInt32(2 + index % count)
        return in_addr(s_addr: (UInt32(127) << 24 | host).bigEndian)
    }

    /// Starts a connect; the socket becomes writable when it completes (check `finish`).
    static func start(to address: in_addr, port: Int, from source: in_addr?) -> Result<Int32, SocketError> {
        let fd = socket(AF_INET, streamNonBlockingCloseOnExec, 0)
        guard fd >= 0 else { return .failure(SocketError("socket")) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), tcpNoDelay, &one, socklen_t(MemoryLayout<Int32>.size))
        if let source {
            setsockopt(fd, Int32(IPPROTO_IP), bindAddressNoPort, &one, socklen_t(MemoryLayout<Int32>.size))
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr = source
            let rc = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                let error = SocketError("bind")
                close(fd)
                return .failure(error)
            }
        }
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = UInt16(port).bigEndian
        remote.sin_addr = address
        let rc = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 && errno != EINPROGRESS {
            let error = SocketError("connect")
            close(fd)
            return .failure(error)
        }
        return .success(fd)
    }

    /// The outcome of a connect that signalled writable: nil when it succeeded.
    static func finish(_ fd: Int32) -> SocketError? {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { return SocketError("getsockopt") }
        return error == 0 ? nil : SocketError("connect", code: error)
    }

    /// Writes all of `bytes` or returns how many were taken before the socket would block;
    /// nil on a hard error.
    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int? {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return done }
            return nil
        }
        return done
    }
}
