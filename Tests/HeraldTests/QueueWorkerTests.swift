// QueueWorker against a real redis-server: an item is handed over with a tag and kept in the
// worker's processing list until acked; a worker that leaves puts what it held back.
import HeraldTestSupport
import XCTest

@testable import Herald

/// A queue client that records the JSON it is sent.
final class RecordingQueueClient: QueueClient {
    var isClosed = false
    private(set) var messages: [[String: Any]] = []
    func sendMessage(_ json: [UInt8]) {
        messages.append((try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any] ?? [:])
    }
}

final class QueueWorkerTests: XCTestCase {
    private var bed: RedisTestbed!
    private var pool: BlockingPool!

    override func setUpWithError() throws {
        bed = try RedisTestbed()
        pool = BlockingPool(
            loop: bed.loop, endpoint: bed.server.endpoint(), capacity: 4, idleMs: 60_000, control: bed.link, cluster: nil, logger: .test())
    }

    override func tearDown() {
        pool?.stop()
        bed?.stop()
    }

    private var loop: EventLoop { bed.loop }
    private var server: RedisServer { bed.server }
    private var link: RedisConnection { bed.link }

    private func worker(_ client: RecordingQueueClient) -> QueueWorker {
        let services = QueueServices(
            redis: link, blocking: pool, leases: QueueLeases(redis: link, loop: loop, leaseMs: 30_000, logger: .test()),
            loop: loop, logger: .test(), drain: DrainClock())
        return QueueWorker(queue: "jobs", connection: client, services: services)
    }

    private func list(_ key: RedisName) throws -> [String] {
        try server.cli("LRANGE", key.text, "0", "-1").split(whereSeparator: \.isNewline).map(String.init)
    }

    func testAnItemIsHeldUntilAcked() throws {
        _ = try server.cli("LPUSH", "jobs", "job-1")
        let client = RecordingQueueClient()
        let consumer = worker(client)
        consumer.pop(wait: 0, id: nil)
        XCTAssertTrue(loop.run(until: { client.messages.count == 1 }))
        XCTAssertEqual(client.messages[0]["type"] as? String, "item")
        XCTAssertEqual(client.messages[0]["data"] as? String, "job-1")
        let tag = try XCTUnwrap(client.messages[0]["tag"] as? Int)
        XCTAssertEqual(try list(consumer.processing), ["job-1"], "held in the worker's processing list")
        consumer.ack(tag: tag, id: nil)
        XCTAssertTrue(loop.run(until: { client.messages.count == 2 }))
        XCTAssertEqual(client.messages[1]["type"] as? String, "acked")
        XCTAssertEqual(try list(consumer.processing), [])
        consumer.stop()
    }

    func testAWorkerThatLeavesPutsWhatItHeldBack() throws {
        _ = try server.cli("LPUSH", "jobs", "a", "b")
        let client = RecordingQueueClient()
        let consumer = worker(client)
        consumer.pop(wait: 0, id: nil)
        XCTAssertTrue(loop.run(until: { client.messages.count == 1 }))
        XCTAssertEqual(client.messages[0]["data"] as? String, "a", "the oldest first")
        consumer.stop()
        XCTAssertTrue(loop.run(until: { (try? self.list("jobs")) == ["b", "a"] }), "a is back at the pop end")
    }

    func testAWaitingPopEndsEmptyAfterItsWait() {
        let client = RecordingQueueClient()
        let consumer = worker(client)
        consumer.pop(wait: 1, id: nil)
        XCTAssertTrue(loop.run(until: { client.messages.count == 1 }, timeoutMs: 3000))
        XCTAssertEqual(client.messages[0]["type"] as? String, "empty")
        consumer.stop()
    }
}
