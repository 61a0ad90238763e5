// One loop, a private redis-server and a command link to it, ready: what the integration tests
// of the Redis-facing types (pool, leases, readers, workers) start from.
import Herald
import XCTest

/// A loop with a ready command link to its own redis-server; stop it in `tearDown`.
public final class RedisTestbed {
    public let loop: EventLoop
    public let server: RedisServer
    /// The loop's command link, ready.
    public let link: RedisConnection
    /// The loop's stream tail (on a link of its own), for stream readers.
    public private(set) lazy var tailer: StreamTailer = {
        let tailLink = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .commands, logger: .test(), replyTimeoutMs: 30_000)
        let tailer = StreamTailer(loop: loop, link: tailLink, sender: link, logger: .test())
        tailer.connect()
        tailerStarted = true
        return tailer
    }()
    private var tailerStarted = false

    public init(file: StaticString = #filePath, line: UInt = #line) throws {
        loop = try EventLoop()
        server = try RedisServer()
        link = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .commands, logger: .test())
        link.connect()
        let link = self.link
        XCTAssertTrue(loop.run(until: { link.isReady }), "link not ready: \(link.lastError)", file: file, line: line)
    }

    public func stop() {
        if tailerStarted { tailer.stop() }
        link.stop()
        server.stop()
    }

    /// Runs one command through the link and waits for its reply.
    @discardableResult
    public func call(_ arguments: String...) -> RedisReply? { call(arguments) }

    /// Runs one command through the link and waits for its reply.
    @discardableResult
    public func call(_ arguments: [String]) -> RedisReply? {
        var reply: RedisReply?
        XCTAssertTrue(link.send(arguments.map { Array($0.utf8) }) { reply = $0 })
        loop.run(until: { reply != nil })
        return reply
    }

    /// Appends entries `v=value` to `stream` (pipelined) and returns their ids in order.
    public func xadd(_ stream: String, _ values: [String]) -> [String] {
        var ids: [String?] = Array(repeating: nil, count: values.count)
        for (i, value) in values.enumerated() {
            link.send([Array("XADD".utf8), Array(stream.utf8), Array("*".utf8), Array("v".utf8), Array(value.utf8)]) { ids[i] = $0.text }
        }
        XCTAssertTrue(loop.run(until: { !ids.contains(nil) }, timeoutMs: 10_000))
        return ids.compactMap { $0 }
    }
}
