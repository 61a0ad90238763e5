// Free loopback TCP ports for servers the tests start, found by letting the kernel pick one.
import Glibc

public enum FreePort {
    /// A port nothing listens on right now: binds 127.0.0.1:0, reads the port back, closes.
    /// Another process could take it before the caller binds it; tests accept that small race.
    public static func find() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket(): errno \(errno)")
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(bound == 0, "bind(): errno \(errno)")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        precondition(named == 0, "getsockname(): errno \(errno)")
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A free port that is not `port` (for a second listener of the same server).
    public static func find(other port: Int) -> Int {
        while true {
            let candidate = find()
            if candidate != port { return candidate }
        }
    }
}
