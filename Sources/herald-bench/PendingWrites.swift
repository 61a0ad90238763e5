// Bytes a bench connection could not write yet: written first, once the socket drains, so
// requests and frames leave in order. Shared by publishers and subscribers.

import Herald

/// A connection's unwritten output; the owner watches for writability while it is not empty.
struct PendingWrites {
    enum Outcome {
        /// Everything is written.
        case done
        /// Some bytes wait: watch the socket for writability.
        case waiting
        /// The socket failed: drop the connection.
        case failed
    }

    private var bytes: [UInt8] = []

    var isEmpty: Bool { bytes.isEmpty }

    /// Writes `data` after anything already pending.
    private mutating func write(_ data: [UInt8], to fd: Int32) -> Outcome {
        if !bytes.isEmpty {
            bytes.append(contentsOf: data)
            return .waiting
        }
        guard let written = data.withUnsafeBytes({ Connector.write(fd, $0) }) else { return .failed }
        if written == data.count { return .done }
        bytes = Array(data[written...])
        return .waiting
    }

    /// Writes what is pending; `.done` once nothing is left.
    private mutating func flush(to fd: Int32) -> Outcome {
        guard !bytes.isEmpty else { return .done }
        guard let written = bytes.withUnsafeBytes({ Connector.write(fd, $0) }) else { return .failed }
        bytes.removeFirst(written)
        return bytes.isEmpty ? .done : .waiting
    }

    mutating func clear() { bytes = [] }

    /// Sends `data` after anything pending and watches `fd` for writability when a backlog
    /// starts. False when the socket failed: drop the connection.
    mutating func send(_ data: [UInt8], fd: Int32, loop: EventLoop) -> Bool {
        let wasEmpty = isEmpty
        switch write(data, to: fd) {
        case .failed: return false
        case .waiting where wasEmpty: loop.modify(fd: fd, events: IOEvents.readable | IOEvents.writable)
        default: break
        }
        return true
    }

    /// Writes the backlog once `fd` is writable and stops watching when it is gone. False when
    /// the socket failed.
    mutating func drain(fd: Int32, loop: EventLoop) -> Bool {
        guard !isEmpty else { return true }
        switch flush(to: fd) {
        case .failed: return false
        case .done: loop.modify(fd: fd, events: IOEvents.readable)
        case .waiting: break
        }
        return true
    }
}
