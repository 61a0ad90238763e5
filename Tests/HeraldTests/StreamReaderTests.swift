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
    private var loop: EventLoop!
    private var server: RedisServer!
    private var link: RedisConnection!
    private var tailLink: RedisConnection!
    private var tailer: StreamTailer!

    override func setUpWithError() throws {
        loop = try EventLoop()
        server = try RedisServer()
        link = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .commands, logger: .test())
        tailLink = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .commands, logger: .test(), replyTimeoutMs: 30_000)
        tailer = StreamTailer(loop: loop, link: tailLink, sender: link, logger: .test())
        link.connect()
        tailer.connect()
        XCTAssertTrue(loop.run(until: { self.link.isReady }))
    }

    override func tearDown() {
        tailer?.stop()
        link?.stop()
        server?.stop()
        loop = nil
    }

    private var services: StreamServices {
        StreamServices(redis: link, tailer: tailer, loop: loop, claimIdleMs: 30_000, maxOutbound: 1 << 20)
    }

    /// Appends entries through the command link (pipelined) and returns their ids.
    private func xadd(_ stream: String, _ values: [String]) -> [String] {
        var ids: [String?] = Array(repeating: nil, count: values.count)
        for (i, value) in values.enumerated() {
            link.send(.command("XADD", stream, "*", "v", value)) { ids[i] = $0.text }
        }
        XCTAssertTrue(loop.run(until: { !ids.contains(nil) }, timeoutMs: 10_000))
        return ids.compactMap { $0 }
    }

    @discardableResult
    private func xadd(_ stream: String, _ value: String) -> String { xadd(stream, [value])[0] }

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
