// BlockingPool against a real redis-server: waits run on their own connections up to the cap,
// a cancelled wait ends at once and frees its connection, idle connections close.
import Herald
import HeraldTestSupport
import XCTest

final class BlockingPoolTests: XCTestCase {
    private var bed: RedisTestbed!
    private var pool: BlockingPool?

    override func setUpWithError() throws { bed = try RedisTestbed() }

    override func tearDown() {
        pool?.stop()
        bed?.stop()
    }

    private var loop: EventLoop { bed.loop }
    private var server: RedisServer { bed.server }
    private var control: RedisConnection { bed.link }

    private func makePool(capacity: Int, idleMs: Int64 = 60_000) -> BlockingPool {
        let pool = BlockingPool(
            loop: loop, endpoint: server.endpoint(), capacity: capacity, idleMs: idleMs, control: control,
            cluster: nil, logger: .test())
        self.pool = pool
        return pool
    }

    private func blpop(_ pool: BlockingPool, _ key: String, seconds: Int = 30, _ done: @escaping (RedisReply) -> Void) -> BlockingPool.Ticket? {
        pool.run(key: Array(key.utf8), .command("BLPOP", key, String(seconds)), done)
    }

    /// Clients Redis sees blocked right now.
    private func blockedClients() -> Int {
        (try? server.cli("INFO", "clients"))?.split(whereSeparator: \.isNewline)
            .first { $0.hasPrefix("blocked_clients:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespacesAndNewlines)) } ?? -1
    }

    func testWaitsRunUpToTheCapThenAreRefused() throws {
        let pool = makePool(capacity: 2)
        var replies: [RedisReply] = []
        XCTAssertNotNil(blpop(pool, "a") { replies.append($0) })
        XCTAssertNotNil(blpop(pool, "b") { replies.append($0) })
        XCTAssertNil(blpop(pool, "c") { replies.append($0) }, "a third wait is past the cap")
        XCTAssertTrue(loop.run(until: { self.blockedClients() == 2 }))
        _ = try server.cli("RPUSH", "a", "item")
        XCTAssertTrue(loop.run(until: { replies.count == 1 }))
        XCTAssertEqual(replies.first, .array([.string(Array("a".utf8)), .string(Array("item".utf8))]))
        XCTAssertNotNil(blpop(pool, "c") { replies.append($0) }, "the finished wait's connection is free again")
    }

    func testACancelledWaitEndsAtOnceAndFreesItsConnection() throws {
        let pool = makePool(capacity: 1)
        var reply: RedisReply?
        let ticket = try XCTUnwrap(blpop(pool, "q", seconds: 300) { reply = $0 })
        XCTAssertTrue(loop.run(until: { self.blockedClients() == 1 }))
        pool.cancel(ticket)
        XCTAssertTrue(loop.run(until: { reply != nil }, timeoutMs: 3000), "the 300 s wait ended")
        XCTAssertEqual(reply, .null)
        XCTAssertEqual(blockedClients(), 0)
        XCTAssertNotNil(blpop(pool, "q", seconds: 1) { _ in }, "its connection serves the next wait")
    }

    func testIdleConnectionsClose() throws {
        let pool = makePool(capacity: 2, idleMs: 100)
        var done = false
        _ = blpop(pool, "x", seconds: 1) { _ in done = true }
        _ = try server.cli("RPUSH", "x", "1")
        XCTAssertTrue(loop.run(until: { done }))
        let clients = { (try? self.server.cli("CLIENT", "LIST"))?.split(whereSeparator: \.isNewline).count ?? -1 }
        XCTAssertEqual(clients(), 3, "the control link, the pool's link and redis-cli itself")
        loop.run(forMs: 150)
        pool.checkTimeouts(now: Clock.nowMs())
        XCTAssertTrue(loop.run(until: { clients() == 2 }), "the idle pool link closed")
    }

    func testCommandsInOrderRunOnOneConnectionAndHoldIt() throws {
        let pool = makePool(capacity: 1)
        var replies: [RedisReply]?
        // WAIT counts the writes of its own connection: on a Redis without replicas it answers 0
        // after its timeout, and the pair must have held the only connection meanwhile.
        let started = pool.runInOrder(
            key: Array("k".utf8), [.command("RPUSH", "k", "x"), .command("WAIT", "1", "300")], deadlineMs: 5000
        ) { replies = $0 }
        XCTAssertNotNil(started)
        XCTAssertNil(blpop(pool, "other") { _ in }, "the connection is busy until both answered")
        XCTAssertTrue(loop.run(until: { replies != nil }, timeoutMs: 5000))
        XCTAssertEqual(replies, [.integer(1), .integer(0)])
        XCTAssertNotNil(blpop(pool, "other", seconds: 1) { _ in }, "free again")
    }

    func testCommandsInOrderPastTheirDeadlineDropTheConnection() throws {
        let pool = makePool(capacity: 1)
        var replies: [RedisReply]?
        let started = Clock.nowMs()
        XCTAssertNotNil(
            pool.runInOrder(key: Array("q".utf8), [.command("PING"), .command("BLPOP", "q", "30")], deadlineMs: 300) {
                replies = $0
            })
        XCTAssertTrue(loop.run(until: { replies != nil }, timeoutMs: 5000), "answered at the deadline, not after 30 s")
        XCTAssertLessThan(Clock.nowMs() - started, 3000)
        XCTAssertEqual(replies?.first, .status("PONG"))
        guard case .linkLost? = replies?.last else { return XCTFail("the wait past the deadline is a link loss: \(String(describing: replies))") }
        XCTAssertTrue(loop.run(until: { self.blockedClients() == 0 }), "the connection was dropped")
    }

    func testACancelledWaitInOrderEndsAtOnce() throws {
        let pool = makePool(capacity: 1)
        var replies: [RedisReply]?
        let ticket = try XCTUnwrap(
            pool.runInOrder(key: Array("w".utf8), [.command("RPUSH", "w", "x"), .command("WAIT", "1", "30000")], deadlineMs: 35_000) {
                replies = $0
            })
        XCTAssertTrue(loop.run(until: { self.blockedClients() == 1 }), "WAIT blocks its connection")
        pool.cancel(ticket)
        XCTAssertTrue(loop.run(until: { replies != nil }, timeoutMs: 3000), "the 30 s WAIT ended")
        XCTAssertEqual(replies, [.integer(1), .integer(0)])
    }
}
