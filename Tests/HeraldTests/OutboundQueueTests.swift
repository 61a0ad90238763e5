import Glibc
import XCTest

@testable import Herald

final class OutboundQueueTests: XCTestCase {
    /// A connected pair of non-blocking sockets with a small send buffer, so writes stop early.
    private func socketPair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        var size: Int32 = 4096
        setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        return (fds[0], fds[1])
    }

    private func readAll(_ fd: Int32) -> [UInt8] {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return out }
            out += buffer[0..<n]
        }
    }

    func testDropUnstartedKeepsThePartlyWrittenChunkWhole() throws {
        let (writer, reader) = socketPair()
        defer { close(writer); close(reader) }
        var queue = OutboundQueue()
        let first = [UInt8](repeating: 1, count: 200_000)
        queue.append(Chunk.of(first))
        queue.append(Chunk.of([UInt8](repeating: 2, count: 1000)))
        queue.append(Chunk.of([UInt8](repeating: 3, count: 1000)))
        XCTAssertEqual(try queue.flush(to: writer).get(), false, "the socket takes less than the first chunk")
        queue.dropUnstarted()
        XCTAssertLessThanOrEqual(queue.byteCount, first.count)
        queue.append(Chunk.of([9, 9]))
        var received: [UInt8] = []
        while true {
            received += readAll(reader)
            if try queue.flush(to: writer).get() { break }
        }
        received += readAll(reader)
        XCTAssertEqual(received, first + [9, 9], "the begun chunk completes, then what was queued after the drop")
    }

    func testDropUnstartedOnAnUnstartedQueueEmptiesIt() {
        var queue = OutboundQueue()
        queue.append(Chunk.of([1, 2, 3]))
        queue.dropUnstarted()
        XCTAssertTrue(queue.isEmpty)
    }
}
