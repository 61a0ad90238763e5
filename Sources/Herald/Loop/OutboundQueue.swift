// A client's pending output: shared chunks written with writev, bounded in bytes by its owner.
import CHiredis
import Glibc

/// Queue of chunks waiting to be written to one socket. Confined to its connection's loop.
public struct OutboundQueue {
    private var chunks: [Chunk] = []
    /// Index of the first unwritten chunk in `chunks`.
    private var head = 0
    /// Bytes of `chunks[head]` already written.
    private var headOffset = 0
    /// Bytes queued and not yet written.
    public private(set) var byteCount = 0

    public init() {}

    public var isEmpty: Bool { byteCount == 0 }

    public mutating func append(_ chunk: Chunk) {
        guard chunk.count > 0 else { return }
        chunks.append(chunk)
        byteCount += chunk.count
    }

    /// Writes as much as the socket takes. Returns `true` when everything queued was written.
    public mutating func flush(to fd: Int32) -> Result<Bool, SocketError> {
        let maxIOV = 64
        return withUnsafeTemporaryAllocation(of: iovec.self, capacity: maxIOV) { iov in
            while byteCount > 0 {
                var n = 0
                var index = head
                while index < chunks.count && n < maxIOV {
                    let chunk = chunks[index]
                    let skip = index == head ? headOffset : 0
                    iov[n] = iovec(iov_base: chunk.base + skip, iov_len: chunk.count - skip)
                    n += 1
                    index += 1
                }
                switch Socket.writev(fd, iov.baseAddress!, count: Int32(n)) {
                case .failure(let error):
                    return .failure(error)
                case .success(0):
                    return .success(false)
                case .success(var written):
                    byteCount -= written
                    while written > 0 {
                        let remaining = chunks[head].count - headOffset
                        if written >= remaining {
                            written -= remaining
                            head += 1
                            headOffset = 0
                        } else {
                            headOffset += written
                            written = 0
                        }
                    }
                    compact()
                }
            }
            return .success(true)
        }
    }

    /// Drops every chunk not yet begun (a chunk partly written stays: the peer must see whole
    /// frames), so what is queued next goes out right after it.
    public mutating func dropUnstarted() {
        let keep = headOffset > 0 ? head + 1 : head
        guard keep < chunks.count else { return }
        for chunk in chunks[keep...] { byteCount -= chunk.count }
        chunks.removeSubrange(keep...)
        compact()
    }

    /// Releases written chunks. An empty queue keeps a small array (reallocating it for every
    /// message to every subscriber was one malloc per delivery) but gives a large one back.
    private mutating func compact() {
        if head == chunks.count {
            if chunks.capacity > 16 { chunks = [] } else { chunks.removeAll(keepingCapacity: true) }
            head = 0
        } else if head > 64 && head * 2 > chunks.count {
            chunks.removeFirst(head)
            head = 0
        }
    }
}
