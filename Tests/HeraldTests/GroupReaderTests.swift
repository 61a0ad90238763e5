// GroupReader against a real redis-server: the group is created on demand, at most `prefetch`
// entries are out unacked, an ack lets the next ones through, and a consumer that reconnects
// under its name gets its pending entries first.
import HeraldTestSupport
import XCTest

@testable import Herald

final class GroupReaderTests: XCTestCase {
    private var bed: RedisTestbed!

    override func setUpWithError() throws { bed = try RedisTestbed() }
    override func tearDown() { bed?.stop() }

    private var loop: EventLoop { bed.loop }

    private func reader(_ client: RecordingStreamClient, consumer: RedisName = "c1", prefetch: Int) -> GroupReader {
        GroupReader(
            stream: "jobs", group: "g", consumer: consumer, createAt: "0", prefetch: prefetch, connection: client,
            services: StreamServices(redis: bed.link, tailer: bed.tailer, loop: bed.loop, claimIdleMs: 60_000, maxOutbound: 1 << 20))
    }

    private func xadd(_ values: [String]) -> [StreamID] { bed.xadd("jobs", values).compactMap(StreamID.init) }

    /// The entry ids in the JSON messages the client got.
    private func delivered(_ client: RecordingStreamClient) -> [String] {
        client.messages.compactMap { text in
            guard let json = try? JSONValue.parse(Array(text.utf8)), json["type"]?.stringValue == "entry" else { return nil }
            return json["id"]?.stringValue
        }
    }

    func testPrefetchBoundsWhatIsOutAndAnAckLetsMoreThrough() {
        let ids = xadd((1...5).map { "job\($0)" })
        let client = RecordingStreamClient()
        let group = reader(client, prefetch: 2)
        group.start()
        XCTAssertTrue(loop.run(until: { self.delivered(client).count == 2 }))
        loop.run(forMs: 200)
        XCTAssertEqual(delivered(client), ids[0..<2].map(\.description), "no more than prefetch unacked")
        var acked: Result<Int, HTTPError>?
        group.ack([ids[0]]) { result, _ in acked = result }
        XCTAssertTrue(loop.run(until: { acked != nil }))
        XCTAssertEqual(try acked?.get(), 1)
        XCTAssertTrue(loop.run(until: { self.delivered(client).count == 3 }, timeoutMs: 3000))
        XCTAssertEqual(delivered(client), ids[0..<3].map(\.description))
        group.stop()
    }

    func testAReconnectingConsumerGetsItsPendingEntriesFirst() {
        let ids = xadd(["a", "b"])
        let first = RecordingStreamClient()
        let before = reader(first, prefetch: 10)
        before.start()
        XCTAssertTrue(loop.run(until: { self.delivered(first).count == 2 }))
        before.stop()  // left without acking
        let again = RecordingStreamClient()
        let after = reader(again, prefetch: 10)
        after.start()
        XCTAssertTrue(loop.run(until: { self.delivered(again).count == 2 }))
        XCTAssertEqual(delivered(again), ids.map(\.description), "its unacked entries, in order")
        after.stop()
    }
}
