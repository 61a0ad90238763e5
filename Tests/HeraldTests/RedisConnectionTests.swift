// RedisConnection against a real redis-server: replies, pipelining, login, and the link going
// down and coming back by itself.
@testable import Herald
import HeraldTestSupport
import XCTest

final class RedisConnectionTests: XCTestCase {
    private var loop: EventLoop!
    private var servers: [RedisServer] = []
    private var connections: [RedisConnection] = []

    override func setUpWithError() throws {
        loop = try EventLoop()
    }

    override func tearDown() {
        for connection in connections { connection.stop() }
        for server in servers { server.stop() }
        connections = []
        servers = []
        loop = nil
    }

    private func startRedis(password: String? = nil) throws -> RedisServer {
        let server = try RedisServer(password: password)
        servers.append(server)
        return server
    }

    private func connection(
        _ endpoint: RedisEndpoint, mode: RedisConnection.Mode = .commands,
        replyTimeoutMs: Int64 = 5000
    ) -> RedisConnection {
        let connection = RedisConnection(loop: loop, endpoint: endpoint, mode: mode, logger: .test(), replyTimeoutMs: replyTimeoutMs)
        connections.append(connection)
        connection.connect()
        return connection
    }

    private func ready(
        _ endpoint: RedisEndpoint, mode: RedisConnection.Mode = .commands, replyTimeoutMs: Int64 = 5000,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> RedisConnection {
        let c = connection(endpoint, mode: mode, replyTimeoutMs: replyTimeoutMs)
        guard loop.run(until: { c.isReady }) else {
            XCTFail("link not ready: \(c.lastError)", file: file, line: line)
            throw XCTSkip("link never became ready")
        }
        return c
    }

    /// Sends one command and runs the loop until its reply arrives.
    private func call(_ c: RedisConnection, _ arguments: String..., file: StaticString = #filePath, line: UInt = #line) -> RedisReply? {
        var reply: RedisReply?
        let sent = c.send(arguments.map { Array($0.utf8) }) { reply = $0 }
        XCTAssertTrue(sent, "send refused: \(c.lastError)", file: file, line: line)
        loop.run(until: { reply != nil })
        return reply
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: commands

    func testConnectsAndAnswersPing() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        XCTAssertEqual(c.state, .ready)
        XCTAssertEqual(call(c, "PING"), .status("PONG"))
        XCTAssertEqual(c.pendingCount, 0)
        XCTAssertEqual(c.reconnects, 0)
    }

    func testReplyKinds() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        XCTAssertEqual(call(c, "SET", "k", "v"), .status("OK"))
        XCTAssertEqual(call(c, "GET", "k"), .string(Array("v".utf8)))
        XCTAssertEqual(call(c, "GET", "missing"), .null)
        XCTAssertEqual(call(c, "INCR", "n"), .integer(1))
        XCTAssertEqual(call(c, "RPUSH", "l", "a", "b"), .integer(2))
        XCTAssertEqual(call(c, "LRANGE", "l", "0", "-1"), .array([.string(Array("a".utf8)), .string(Array("b".utf8))]))
        XCTAssertEqual(call(c, "NOSUCHCOMMAND")?.errorMessage?.hasPrefix("ERR unknown command"), true)
        XCTAssertTrue(c.isReady, "an error reply does not break the link")
    }

    func testArgumentsAreBinarySafe() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        let payload: [UInt8] = [0x00, 0xFF, 0x0D, 0x0A, 0x24, 0x2A, 0x20]
        var reply: RedisReply?
        XCTAssertTrue(c.send([bytes("ECHO"), payload]) { reply = $0 })
        loop.run(until: { reply != nil })
        XCTAssertEqual(reply, .string(payload))
        var empty: RedisReply?
        XCTAssertTrue(c.send([bytes("ECHO"), []]) { empty = $0 })
        loop.run(until: { empty != nil })
        XCTAssertEqual(empty, .string([]))
    }

    /// A command with 100,000 arguments (a SUBSCRIBE of a whole loop's channels after a
    /// reconnect can be that long) goes out whole, empty arguments included, without the
    /// per-argument nesting that would overflow the stack.
    func testVeryLongCommandsAreSentWhole() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        let items = (0..<100_000).map { $0 % 1000 == 0 ? [] : bytes("item-\($0)") }
        var pushed: RedisReply?
        XCTAssertTrue(c.send([bytes("RPUSH"), bytes("long")] + items) { pushed = $0 })
        loop.run(until: { pushed != nil }, timeoutMs: 20_000)
        XCTAssertEqual(pushed, .integer(100_000))
        XCTAssertEqual(call(c, "LINDEX", "long", "99999"), .string(bytes("item-99999")))
        XCTAssertEqual(call(c, "LINDEX", "long", "1000"), .string([]))
    }

    func testSendBeforeReadyIsRefusedWithoutCallback() throws {
        let server = try startRedis()
        let c = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .commands, logger: .test())
        connections.append(c)
        var called = false
        XCTAssertFalse(c.send([bytes("PING")]) { _ in called = true })
        c.connect()
        XCTAssertFalse(c.send([bytes("PING")]) { _ in called = true }, "connecting is not ready")
        loop.run(until: { c.isReady })
        loop.run(forMs: 50)
        XCTAssertFalse(called)
    }

    func testPipelinedPublishesAreAnsweredInOrder() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        // A second link subscribes, so every PUBLISH has one receiver and arrives in order.
        let listener = try ready(server.endpoint(), mode: .pushes)
        var pushes: [RedisReply] = []
        listener.onPush = { pushes.append($0) }
        XCTAssertTrue(listener.send([bytes("SUBSCRIBE"), bytes("pipe")]))
        loop.run(until: { !pushes.isEmpty })
        XCTAssertEqual(pushes.first, .array([.string(bytes("subscribe")), .string(bytes("pipe")), .integer(1)]))
        pushes = []

        var answered: [Int] = []
        var replies: [RedisReply] = []
        for i in 0..<1000 {
            XCTAssertTrue(
                c.send([bytes("PUBLISH"), bytes("pipe"), bytes("m\(i)")]) { reply in
                    answered.append(i)
                    replies.append(reply)
                })
        }
        XCTAssertEqual(c.pendingCount, 1000)
        XCTAssertTrue(
            loop.run(until: { answered.count == 1000 && pushes.count == 1000 }, timeoutMs: 10_000),
            "answered \(answered.count), delivered \(pushes.count)")
        XCTAssertEqual(answered, Array(0..<1000))
        XCTAssertTrue(replies.allSatisfy { $0 == .integer(1) }, "each PUBLISH reaches the one subscriber")
        let payloads = pushes.compactMap { reply -> String? in
            guard case .array(let items) = reply, items.count == 3 else { return nil }
            return items[2].text
        }
        XCTAssertEqual(payloads, (0..<1000).map { "m\($0)" })
        XCTAssertEqual(c.pendingCount, 0)
    }

    func testPipelinedRepliesMatchTheirCommands() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        var replies: [RedisReply] = []
        for _ in 0..<1000 { c.send([bytes("INCR"), bytes("counter")]) { replies.append($0) } }
        loop.run(until: { replies.count == 1000 }, timeoutMs: 10_000)
        XCTAssertEqual(replies, (1...1000).map { .integer($0) })
    }

    // MARK: login

    func testAuthAndSelectFromTheEndpoint() throws {
        let server = try startRedis(password: "s3cret")
        let c = try ready(server.endpoint(database: 3))
        XCTAssertEqual(call(c, "SET", "where", "db3"), .status("OK"))
        XCTAssertEqual(try server.cli("-n", "3", "GET", "where"), "db3")
        XCTAssertEqual(try server.cli("-n", "0", "EXISTS", "where"), "0")
    }

    func testAuthWithUsernameFromAURL() throws {
        let server = try startRedis(password: "p@ss")
        let endpoint = try RedisEndpoint.parse("redis://default:p%40ss@127.0.0.1:\(server.port)/2")
        let c = try ready(endpoint)
        XCTAssertEqual(call(c, "SET", "k", "v"), .status("OK"))
        XCTAssertEqual(try server.cli("-n", "2", "GET", "k"), "v")
    }

    func testSelectWithoutPassword() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint(database: 5))
        XCTAssertEqual(call(c, "SET", "k", "five"), .status("OK"))
        XCTAssertEqual(try server.cli("-n", "5", "GET", "k"), "five")
    }

    func testWrongPasswordNeverBecomesReady() throws {
        let server = try startRedis(password: "right")
        var endpoint = server.endpoint()
        endpoint.password = "wrong"
        let c = connection(endpoint)
        XCTAssertFalse(loop.run(until: { c.isReady }, timeoutMs: 700))
        XCTAssertTrue(c.lastError.hasPrefix("login refused: WRONGPASS"), c.lastError)
    }

    func testMissingPasswordNeverBecomesReady() throws {
        let server = try startRedis(password: "right")
        let c = connection(RedisEndpoint(host: "127.0.0.1", port: server.port, database: 1))
        XCTAssertFalse(loop.run(until: { c.isReady }, timeoutMs: 700))
        XCTAssertTrue(c.lastError.hasPrefix("login refused: NOAUTH"), c.lastError)
    }

    /// With a password and a database, a refused AUTH also fails the queued SELECT; that second
    /// failure must not replace the real reason, nor count as a second failure.
    func testRefusedLoginReportsRedisReasonOnce() throws {
        let server = try startRedis(password: "right")
        var endpoint = server.endpoint(database: 1)
        endpoint.password = "wrong"
        let c = connection(endpoint)
        var downs: [String] = []
        c.onDown = { downs.append($0) }
        XCTAssertTrue(loop.run(until: { !downs.isEmpty }))
        loop.run(forMs: 20)
        XCTAssertEqual(downs.count, 1, "one failed attempt, one onDown: \(downs)")
        XCTAssertTrue(c.lastError.hasPrefix("login refused: WRONGPASS"), c.lastError)
    }

    // MARK: failure and recovery

    func testLinkDownFailsPendingThenReconnectsByItself() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        var readies = 0
        var downs: [String] = []
        c.onReady = { readies += 1 }
        c.onDown = { downs.append($0) }

        var blocked: RedisReply?
        XCTAssertTrue(c.send([bytes("BLPOP"), bytes("never"), bytes("0")]) { blocked = $0 })
        loop.run(forMs: 50)
        XCTAssertNil(blocked)
        XCTAssertEqual(c.pendingCount, 1)

        server.stop()
        XCTAssertTrue(loop.run(until: { blocked != nil }))
        XCTAssertEqual(blocked?.linkLoss?.mayHaveRun, true, "\(String(describing: blocked))")
        XCTAssertFalse(c.isReady)
        XCTAssertEqual(c.pendingCount, 0)
        var late = false
        XCTAssertFalse(c.send([bytes("PING")]) { _ in late = true }, "a down link refuses commands")
        XCTAssertFalse(late)
        XCTAssertFalse(downs.isEmpty)

        // It keeps retrying, with backoff: a few attempts in a second, not hundreds.
        loop.run(forMs: 1000)
        XCTAssertGreaterThanOrEqual(downs.count, 3, "\(downs)")
        XCTAssertLessThanOrEqual(downs.count, 10, "\(downs)")
        XCTAssertFalse(c.isReady)

        try server.start()
        XCTAssertTrue(loop.run(until: { c.isReady }, timeoutMs: 10_000), c.lastError)
        XCTAssertEqual(readies, 1)
        XCTAssertEqual(c.reconnects, 1)
        XCTAssertEqual(call(c, "PING"), .status("PONG"))
    }

    /// A command Redis has received and not answered when the link drops hears that the link
    /// was lost and that it may have run: a typed outcome, not an error reply's text.
    func testCommandInFlightWhenTheLinkDropsGetsTheTypedLinkLoss() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        var inFlight: RedisReply?
        XCTAssertTrue(c.send([bytes("BLPOP"), bytes("never"), bytes("0")]) { inFlight = $0 })
        XCTAssertTrue(
            loop.run(until: { (try? server.cli("CLIENT", "LIST", "TYPE", "normal").contains("cmd=blpop")) ?? false }, pollMs: 50),
            "Redis runs the BLPOP")
        try server.cli("CLIENT", "KILL", "TYPE", "normal")
        XCTAssertTrue(loop.run(until: { inFlight != nil }))
        XCTAssertNil(inFlight?.errorMessage, "not an error reply: Redis said nothing")
        guard case .linkLost(let loss)? = inFlight else { return XCTFail("\(String(describing: inFlight))") }
        XCTAssertTrue(loss.mayHaveRun, "it reached Redis")
        XCTAssertEqual(loss.reason, "Redis closed the connection")
        XCTAssertEqual(RedisErrors.httpError(inFlight!, command: "BLPOP").code, "redis_unavailable")
    }

    /// Redis's own error text never reads as a lost link, whatever it says.
    func testAnErrorReplyThatLooksLikeALinkLossStaysAnError() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        let reply = call(c, "EVAL", "return redis.error_reply('HERALD_LINK_DOWN from a script')", "0")
        XCTAssertEqual(reply, .error("HERALD_LINK_DOWN from a script"))
        XCTAssertNil(reply?.linkLoss)
        XCTAssertTrue(c.isReady)
    }

    func testCommandsSentJustBeforeTheDropAreFailed() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        server.stop()
        // The loop has not noticed yet: either send refuses, or the reply is a link-down error.
        var reply: RedisReply?
        if c.send([bytes("PING")], { reply = $0 }) {
            XCTAssertTrue(loop.run(until: { reply != nil }))
            XCTAssertNotNil(reply?.linkLoss, "\(String(describing: reply))")
        }
        XCTAssertTrue(loop.run(until: { !c.isReady }))
        XCTAssertFalse(c.send([bytes("PING")]))
    }

    func testConnectsOnceRedisAppears() throws {
        let port = FreePort.find()
        let c = connection(RedisEndpoint(host: "127.0.0.1", port: port))
        XCTAssertFalse(loop.run(until: { c.isReady }, timeoutMs: 300))
        XCTAssertFalse(c.lastError.isEmpty)
        let server = try RedisServer(port: port)
        servers.append(server)
        XCTAssertTrue(loop.run(until: { c.isReady }, timeoutMs: 10_000), c.lastError)
        XCTAssertEqual(call(c, "PING"), .status("PONG"))
    }

    func testUnansweredCommandPastTheReplyTimeoutRestartsTheLink() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint(), replyTimeoutMs: 100)
        var blocked: RedisReply?
        c.send([bytes("BLPOP"), bytes("never"), bytes("0")]) { blocked = $0 }
        loop.run(forMs: 50)
        c.checkTimeouts(now: Clock.nowMs())
        XCTAssertNil(blocked, "not overdue yet")
        loop.run(forMs: 100)
        c.checkTimeouts(now: Clock.nowMs())
        XCTAssertEqual(blocked, .linkLost(LinkLoss(reason: "no reply within 100 ms", mayHaveRun: true)))
        XCTAssertTrue(loop.run(until: { c.isReady }, timeoutMs: 5000), "reconnects after declaring the link wedged")
        XCTAssertEqual(call(c, "PING"), .status("PONG"))
    }

    func testStopFailsPendingAndNeverReconnects() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint())
        var blocked: RedisReply?
        c.send([bytes("BLPOP"), bytes("never"), bytes("0")]) { blocked = $0 }
        loop.run(forMs: 20)
        c.stop()
        XCTAssertEqual(blocked, .linkLost(LinkLoss(reason: "Herald is shutting down", mayHaveRun: true)))
        XCTAssertEqual(c.state, .disconnected)
        loop.run(forMs: 300)
        XCTAssertEqual(c.state, .disconnected)
        c.connect()
        XCTAssertEqual(c.state, .disconnected, "a stopped link stays stopped")
    }

    // MARK: pushes mode

    func testPushesModeDeliversEveryReplyToOnPush() throws {
        let server = try startRedis(password: "pw")
        let c = try ready(server.endpoint(database: 2), mode: .pushes)
        var pushes: [RedisReply] = []
        c.onPush = { pushes.append($0) }
        var callbackCalled = false
        c.send([bytes("SUBSCRIBE"), bytes("a"), bytes("b")]) { _ in callbackCalled = true }
        XCTAssertTrue(loop.run(until: { pushes.count == 2 }))
        XCTAssertEqual(try server.cli("PUBLISH", "a", "x"), "1")
        XCTAssertTrue(loop.run(until: { pushes.count == 3 }))
        XCTAssertEqual(pushes.last, .array([.string(bytes("message")), .string(bytes("a")), .string(bytes("x"))]))
        XCTAssertFalse(callbackCalled, "in pushes mode replies go to onPush, not to callbacks")
    }

    /// In pushes mode no reply is ever matched to a command, so nothing should stay pending:
    /// otherwise every SUBSCRIBE and every health PING adds an entry that is never removed.
    func testPushesModeKeepsNoPendingCommands() throws {
        let server = try startRedis()
        let c = try ready(server.endpoint(), mode: .pushes)
        var pushes = 0
        c.onPush = { _ in pushes += 1 }
        for i in 0..<50 {
            c.send([bytes("SUBSCRIBE"), bytes("c\(i)")])
            c.send([bytes("PING")])
        }
        XCTAssertTrue(loop.run(until: { pushes == 100 }))
        XCTAssertEqual(c.pendingCount, 0)
    }
}
