// Reads `connected_clients` from Redis's `INFO clients` over a short blocking connection: how
// many Redis connections the gateway holds is part of what the bench compares.
import Glibc

enum RedisInfo {
    /// `connected_clients` (this probe's own connection not counted), or nil when Redis does
    /// not answer.
    static func connectedClients(host: String, port: Int) -> Int? {
        guard let address = Connector.address(host), case .success(let fd) = Connector.start(to: address, port: port, from: nil) else {
            return nil
        }
        defer { close(fd) }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, 2000) == 1, Connector.finish(fd) == nil else { return nil }
        let command = Array("INFO clients\r\n".utf8)
        guard command.withUnsafeBytes({ Connector.write(fd, $0) }) == command.count else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Nanos.now() + 2_000_000_000
        while Nanos.now() < deadline {
            poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 200) >= 0 else { return nil }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 { reply.append(contentsOf: buffer[0..<n]) } else if n == 0 { break }
            let text = String(decoding: reply, as: UTF8.self)
            if let line = text.split(separator: "\r\n").first(where: { $0.hasPrefix("connected_clients:") }),
                let clients = Int(line.dropFirst("connected_clients:".count))
            {
                return clients - 1
            }
        }
        return nil
    }
}
