// StreamReader against a real redis-server and the loop's stream tail: history replayed from a
// position, then the live tail with nothing lost or repeated at the seam, and a client too slow
// for the tail caught up from Redis once it has room again.
import HeraldTestSupport
import XCTest

@testable import Herald

/// A stream client that records what it is sent; `room` says whether its queue has space.
final class RecordingStreamClient: StreamClient {
    var isClosed = false
    var room = true
    private(set) var entries: [StreamEntry] = []
    private(set) var messages: [String] = []

    func hasRoom(for bytes: Int) -> Bool { room }
    func sendEntry(_ entry: StreamEntry, checkedRoom: Bool) -> Bool {
        guard checkedRoom || room else { return false }
        entries.append(entry)
        return true
    }
    func sendMessage(_ json: [UInt8]) { messages.append(String(decoding: json, as: UTF8.self)) }

    var ids: [String] { entries.map(\.id.description) }
}

final class StreamReaderTests: XCTestCase {
    private var bed: RedisTestbed!

    override func setUpWithError() throws { bed = try RedisTestbed() }
    override func tearDown() { bed?.stop() }

    private var loop: EventLoop { bed.loop }
    private var services: StreamServices {
        StreamServices(redis: bed.link, tailer: bed.tailer, loop: bed.loop, claimIdleMs: 30_000, maxOutbound: 1 << 20)
    }

    private func xadd(_ stream: String, _ values: [String]) -> [String] { bed.xadd(stream, values) }
    @discardableResult
    private func xadd(_ stream: String, _ value: String) -> String { bed.xadd(stream, [value])[0] }

    func testReplaysHistoryThenFollowsTheTailWithoutGapOrRepeat() throws {
        let first = xadd("s", (1...700).map { "old\($0)" })  // more than one XRANGE page
        let client = RecordingStreamClient()
        let reader = StreamReader(stream: "s", position: .after(.zero), connection: client, services: services)
        reader.start()
        XCTAssertTrue(loop.run(until: { client.entries.count == 700 }, timeoutMs: 10_000))
        let later = xadd("s", (1...5).map { "new\($0)" })
        XCTAssertTrue(loop.run(until: { client.entries.count == 705 }, timeoutMs: 10_000))
        loop.run(forMs: 100)
        XCTAssertEqual(client.ids, first + later, "every entry once, in order")
        reader.stop()
    }

    func testASlowClientIsCaughtUpFromRedisOnceItHasRoom() throws {
        let client = RecordingStreamClient()
        let reader = StreamReader(stream: "s", position: .newOnly, connection: client, services: services)
        reader.start()
        loop.run(forMs: 100)
        client.room = false
        let missed = xadd("s", (1...20).map { "m\($0)" })
        loop.run(forMs: 300)
        XCTAssertLessThan(client.entries.count, 20, "the tail could not hand them all over")
        client.room = true
        reader.drained()
        XCTAssertTrue(loop.run(until: { client.entries.count >= 20 }, timeoutMs: 5000))
        let more = xadd("s", "after")
        XCTAssertTrue(loop.run(until: { client.entries.count == 21 }, timeoutMs: 5000))
        XCTAssertEqual(client.ids, missed + [more], "nothing dropped, nothing twice")
        reader.stop()
    }
}
