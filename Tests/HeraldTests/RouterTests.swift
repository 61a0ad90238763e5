// Router without sockets: requests parsed from bytes, answers caught by a recording exchange.
// Checks the routes, the method rules, the connection limit, origins and the credential, and
// that a publish with Redis unreachable is answered at once.
import HeraldTestSupport
import XCTest

@testable import Herald

/// A connection that records the answers it is given.
final class RecordingExchange: ClientExchange {
    var isClosed = false
    var overLimit = false
    private(set) var answers: [HTTPResponse] = []

    func fill(_ slot: ResponseSlot, _ response: HTTPResponse) { answers.append(response) }
    func upgrade(_ slot: ResponseSlot, response: HTTPResponse, app: SessionApp) -> Bool { false }
    func startEventStream(_ slot: ResponseSlot, app: SessionApp) -> Bool { false }
    func checkPeer() {}
    var remoteAddress: String { "127.0.0.1:1" }
    func deliver(_ delivery: Delivery, raw: Bool) {}
    func send(_ frame: [UInt8]) {}
    func closeWebSocket(code: UInt16, reason: String) {}
    func hasRoom(for bytes: Int) -> Bool { true }
    func sendEntry(_ entry: StreamEntry, checkedRoom: Bool) -> Bool { true }
    func sendMessage(_ json: [UInt8]) {}
}

final class RouterTests: XCTestCase {
    private var loop: EventLoop!
    private var links: [RedisConnection] = []

    override func setUpWithError() throws {
        loop = try EventLoop()
    }

    override func tearDown() {
        for link in links { link.stop() }
        loop = nil
    }

    /// A router whose Redis is a port nothing listens on.
    private func router(_ configure: (inout Config) -> Void = { _ in }) throws -> Router {
        var config = Config()
        config.publicDir = "/nonexistent-herald-public"
        configure(&config)
        let endpoint = try RedisEndpoint.parse("redis://127.0.0.1:\(FreePort.find())")
        let link = RedisConnection(loop: loop, endpoint: endpoint, mode: .commands, logger: .test())
        let pushes = RedisConnection(loop: loop, endpoint: endpoint, mode: .pushes, logger: .test())
        links += [link, pushes]
        let process = ProcessStats(loopCount: 1)
        let tailer = StreamTailer(loop: loop, link: nil, sender: link, logger: .test())
        let services = LoopServices(
            config: config, loop: loop, logger: .test(), stats: process.loops[0], process: process, redis: link,
            hub: Hub(link: pushes, cluster: nil, loop: loop, logger: .test()), tailer: tailer,
            blocking: BlockingPool(loop: loop, endpoint: endpoint, capacity: 1, idleMs: 1000, control: link, cluster: nil, logger: .test()),
            leases: QueueLeases(redis: link, loop: loop, leaseMs: 30_000, logger: .test()), drain: DrainClock())
        return Router(config: config, services: services)
    }

    /// Routes one request given as text and returns every answer it got.
    private func answers(_ router: Router, _ text: String, exchange: RecordingExchange = RecordingExchange()) throws -> [HTTPResponse] {
        var parser = HTTPParser()
        var buffer = ByteBuffer(Array(text.utf8))
        let request = try XCTUnwrap(try parser.next(&buffer))
        router.route(request, Responder(connection: exchange, slot: ResponseSlot(keepAlive: true, head: false)))
        return exchange.answers
    }

    private func code(_ response: HTTPResponse?) -> String? {
        guard let body = response?.body, let json = try? JSONValue.parse(body) else { return nil }
        return json["error"]?.stringValue
    }

    func testHealthAnswersAtOnce() throws {
        let answers = try answers(router(), "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
        XCTAssertEqual(answers.map(\.status), [200])
    }

    func testAMethodARouteDoesNotTakeIs405WithAllow() throws {
        let answer = try answers(router(), "DELETE /publish/x HTTP/1.1\r\nHost: h\r\n\r\n").first
        XCTAssertEqual(answer?.status, 405)
        XCTAssertEqual(code(answer), "method_not_allowed")
        XCTAssertTrue(answer?.headers.contains { $0.0 == "Allow" && $0.1 == "POST" } ?? false)
    }

    func testUnknownPathsGoToTheStaticFiles() throws {
        let answer = try answers(router(), "GET /no-such-file HTTP/1.1\r\nHost: h\r\n\r\n").first
        XCTAssertEqual(answer?.status, 404)
    }

    func testAConnectionOverTheLimitIsRefused() throws {
        let exchange = RecordingExchange()
        exchange.overLimit = true
        let answer = try answers(router(), "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", exchange: exchange).first
        XCTAssertEqual(answer?.status, 503)
        XCTAssertEqual(code(answer), "too_many_connections")
    }

    func testAPublishWithRedisUnreachableIs503AtOnce() throws {
        let answer = try answers(router(), "POST /publish/news HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi").first
        XCTAssertEqual(answer?.status, 503)
        XCTAssertEqual(code(answer), "redis_unavailable")
    }

    func testTheCredentialIsCheckedBeforeRedis() throws {
        let router = try router { $0.apiKeys = ["k" + String(repeating: "x", count: 20)] }
        let answer = try answers(router, "POST /publish/news HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi").first
        XCTAssertEqual(answer?.status, 401)
    }

    func testAPageFromAnotherSiteIsRefusedOnBrokerEndpoints() throws {
        let answer = try answers(router(), "POST /publish/news HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\nContent-Length: 2\r\n\r\nhi").first
        XCTAssertEqual(answer?.status, 403)
        XCTAssertEqual(code(answer), "forbidden")
    }
}
