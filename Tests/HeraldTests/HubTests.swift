// Hub against a real redis-server: one Redis subscription per topic however many local
// subscribers, fan-out of message/pmessage/smessage, and gaps after the link comes back.
import Herald
import HeraldTestSupport
import XCTest

final class HubTests: XCTestCase {
    private var loop: EventLoop!
    private var server: RedisServer!
    private var link: RedisConnection!
    private var hub: Hub!
    /// A command link for publishing binary payloads.
    private var publisher: RedisConnection?

    override func setUpWithError() throws {
        loop = try EventLoop()
        server = try RedisServer()
        link = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .pushes, logger: .test())
        hub = Hub(link: link, cluster: nil, loop: loop, logger: .test())
    }

    override func tearDown() {
        publisher?.stop()
        hub?.stop()
        server?.stop()
        publisher = nil
        hub = nil
        link = nil
        server = nil
        loop = nil
    }

    private func connectLink(file: StaticString = #filePath, line: UInt = #line) {
        hub.connect()
        XCTAssertTrue(loop.run(until: { self.hub.isLinkHealthy }), "subscriber link not ready: \(link.lastError)", file: file, line: line)
    }

    /// Subscribes and runs the loop until the Hub reports the subscription confirmed.
    private func subscribe(
        _ subscriber: Subscriber, _ kind: SubscriptionKind, _ names: [RedisName],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var confirmed = false
        hub.subscribe(subscriber, kind: kind, names: names) { confirmed = true }
        XCTAssertTrue(loop.run(until: { confirmed }), "\(kind) \(names) not confirmed", file: file, line: line)
    }

    /// Publishes with redis-cli and returns the receiver count Redis reports.
    @discardableResult
    private func publish(_ channel: String, _ message: String, command: String = "PUBLISH") throws -> Int {
        let output = try server.cli(command, channel, message)
        return try XCTUnwrap(Int(output), output)
    }

    private func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    // MARK: subscribe and deliver

    func testSubscribeIsConfirmedOnceRedisAgrees() throws {
        connectLink()
        let s = RecordingSubscriber()
        var confirmed = 0
        hub.subscribe(s, kind: .channel, names: ["news", "sport"]) { confirmed += 1 }
        XCTAssertEqual(confirmed, 0, "not before Redis answers")
        XCTAssertTrue(loop.run(until: { confirmed > 0 }))
        loop.run(forMs: 50)
        XCTAssertEqual(confirmed, 1, "one confirmation for the whole call")
        XCTAssertEqual(try server.subscriberCount(channel: "news"), 1)
        XCTAssertEqual(try server.subscriberCount(channel: "sport"), 1)
        XCTAssertEqual(hub.topicCount(.channel), 2)
        XCTAssertEqual(hub.topicCount(.pattern), 0)
    }

    func testSubscribingToNothingConfirmsAtOnce() {
        connectLink()
        var confirmed = false
        hub.subscribe(RecordingSubscriber(), kind: .channel, names: []) { confirmed = true }
        XCTAssertTrue(confirmed)
    }

    func testPublishIsDeliveredWithKindChannelAndPayload() throws {
        connectLink()
        let s = RecordingSubscriber()
        subscribe(s, .channel, ["news"])
        XCTAssertEqual(try publish("news", "hello world"), 1)
        XCTAssertTrue(loop.run(until: { !s.deliveries.isEmpty }))
        let d = try XCTUnwrap(s.deliveries.first)
        XCTAssertEqual(d.kind, .channel)
        XCTAssertEqual(text(d.channel), "news")
        XCTAssertNil(d.pattern)
        XCTAssertEqual(text(d.payload), "hello world")
        XCTAssertEqual(hub.received[.channel], 1)
    }

    func testDeliveriesKeepPublishOrderAndBinaryPayloads() throws {
        connectLink()
        let s = RecordingSubscriber()
        subscribe(s, .channel, ["bin"])
        let publisher = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .commands, logger: .test())
        self.publisher = publisher
        publisher.connect()
        XCTAssertTrue(loop.run(until: { publisher.isReady }))
        let payloads: [[UInt8]] = (0..<200).map { i in [0xFF, 0x00, 0x0D, 0x0A] + Array("#\(i)".utf8) }
        for payload in payloads { publisher.send([Array("PUBLISH".utf8), Array("bin".utf8), payload]) }
        XCTAssertTrue(loop.run(until: { s.deliveries.count == 200 }), "got \(s.deliveries.count)")
        XCTAssertEqual(s.deliveries.map(\.payload), payloads)
    }

    func testOtherChannelsAreNotDelivered() throws {
        connectLink()
        let s = RecordingSubscriber()
        subscribe(s, .channel, ["news"])
        XCTAssertEqual(try publish("other", "x"), 0)
        XCTAssertEqual(try publish("news", "y"), 1)
        XCTAssertTrue(loop.run(until: { !s.deliveries.isEmpty }))
        loop.run(forMs: 50)
        XCTAssertEqual(s.payloads, ["y"])
    }

    func testTwoSubscribersShareOneRedisSubscription() throws {
        connectLink()
        let a = RecordingSubscriber(), b = RecordingSubscriber()
        subscribe(a, .channel, ["ch"])
        subscribe(b, .channel, ["ch"])
        XCTAssertEqual(try server.subscriberCount(channel: "ch"), 1)
        XCTAssertEqual(hub.topicCount(.channel), 1)
        XCTAssertEqual(try publish("ch", "both"), 1, "Redis sees one subscriber")
        XCTAssertTrue(loop.run(until: { a.deliveries.count == 1 && b.deliveries.count == 1 }))
        loop.run(forMs: 50)
        XCTAssertEqual(a.payloads, ["both"])
        XCTAssertEqual(b.payloads, ["both"])
        XCTAssertTrue(a.deliveries[0] === b.deliveries[0], "one Delivery object is shared, so it is encoded once")
        XCTAssertEqual(hub.received[.channel], 1, "Redis sent the message once")
    }

    func testSecondSubscriberBeforeConfirmationWaitsForIt() throws {
        connectLink()
        let a = RecordingSubscriber(), b = RecordingSubscriber()
        var confirmedA = false, confirmedB = false
        hub.subscribe(a, kind: .channel, names: ["ch"]) { confirmedA = true }
        hub.subscribe(b, kind: .channel, names: ["ch"]) { confirmedB = true }
        XCTAssertFalse(confirmedB, "the topic is not confirmed yet")
        XCTAssertTrue(loop.run(until: { confirmedA && confirmedB }))
        XCTAssertEqual(try server.subscriberCount(channel: "ch"), 1)
    }

    func testUnsubscribingTheFirstKeepsTheChannelAndTheLastRemovesIt() throws {
        connectLink()
        let a = RecordingSubscriber(), b = RecordingSubscriber()
        subscribe(a, .channel, ["ch"])
        subscribe(b, .channel, ["ch"])

        hub.unsubscribe(a, kind: .channel, names: ["ch"])
        loop.run(forMs: 100)
        XCTAssertEqual(try server.subscriberCount(channel: "ch"), 1)
        XCTAssertEqual(try publish("ch", "only b"), 1)
        XCTAssertTrue(loop.run(until: { b.deliveries.count == 1 }))
        loop.run(forMs: 50)
        XCTAssertEqual(a.deliveries.count, 0)

        hub.unsubscribe(b, kind: .channel, names: ["ch"])
        XCTAssertTrue(loop.run(until: { (try? self.server.subscriberCount(channel: "ch")) == 0 }, pollMs: 50))
        XCTAssertEqual(hub.topicCount(.channel), 0)
        XCTAssertEqual(try publish("ch", "nobody"), 0)
        loop.run(forMs: 50)
        XCTAssertEqual(b.deliveries.count, 1)
    }

    func testResubscribingAfterTheLastLeftWorks() throws {
        connectLink()
        let a = RecordingSubscriber()
        subscribe(a, .channel, ["ch"])
        hub.unsubscribe(a, kind: .channel, names: ["ch"])
        // Subscribe again before Redis has even seen the UNSUBSCRIBE.
        subscribe(a, .channel, ["ch"])
        loop.run(forMs: 50)
        XCTAssertEqual(try server.subscriberCount(channel: "ch"), 1)
        XCTAssertEqual(try publish("ch", "again"), 1)
        XCTAssertTrue(loop.run(until: { a.deliveries.count == 1 }))
    }

    func testUnsubscribingAnUnknownNameIsHarmless() throws {
        connectLink()
        let a = RecordingSubscriber(), stranger = RecordingSubscriber()
        subscribe(a, .channel, ["ch"])
        hub.unsubscribe(stranger, kind: .channel, names: ["ch", "never-subscribed"])
        loop.run(forMs: 50)
        XCTAssertEqual(try server.subscriberCount(channel: "ch"), 1)
    }

    func testPatternSubscribeGetsPmessageWithThePattern() throws {
        connectLink()
        let s = RecordingSubscriber()
        subscribe(s, .pattern, ["mail-*"])
        XCTAssertEqual(try server.patternCount(), 1)
        XCTAssertEqual(hub.topicCount(.pattern), 1)
        XCTAssertEqual(try publish("mail-1", "you have mail"), 1)
        XCTAssertTrue(loop.run(until: { !s.deliveries.isEmpty }))
        let d = try XCTUnwrap(s.deliveries.first)
        XCTAssertEqual(d.kind, .pattern)
        XCTAssertEqual(text(d.pattern), "mail-*")
        XCTAssertEqual(text(d.channel), "mail-1")
        XCTAssertEqual(text(d.payload), "you have mail")
        XCTAssertEqual(hub.received[.pattern], 1)
        XCTAssertNil(hub.received[.channel])

        hub.unsubscribe(s, kind: .pattern, names: ["mail-*"])
        XCTAssertTrue(loop.run(until: { (try? self.server.patternCount()) == 0 }, pollMs: 50))
    }

    func testChannelAndMatchingPatternBothDeliver() throws {
        connectLink()
        let s = RecordingSubscriber()
        subscribe(s, .channel, ["mail-1"])
        subscribe(s, .pattern, ["mail-*"])
        XCTAssertEqual(try publish("mail-1", "twice"), 2)
        XCTAssertTrue(loop.run(until: { s.deliveries.count == 2 }))
        XCTAssertEqual(Set(s.deliveries.map(\.kind)), [.channel, .pattern])
    }

    func testShardSubscribeGetsSmessage() throws {
        connectLink()
        let s = RecordingSubscriber()
        subscribe(s, .shard, ["s1", "s2"])
        XCTAssertEqual(try server.shardSubscriberCount(channel: "s1"), 1)
        XCTAssertEqual(try server.shardSubscriberCount(channel: "s2"), 1)
        XCTAssertEqual(hub.topicCount(.shard), 2)
        XCTAssertEqual(try publish("s2", "sharded", command: "SPUBLISH"), 1)
        XCTAssertTrue(loop.run(until: { !s.deliveries.isEmpty }))
        let d = try XCTUnwrap(s.deliveries.first)
        XCTAssertEqual(d.kind, .shard)
        XCTAssertEqual(text(d.channel), "s2")
        XCTAssertNil(d.pattern)
        XCTAssertEqual(text(d.payload), "sharded")

        hub.unsubscribe(s, kind: .shard, names: ["s1", "s2"])
        XCTAssertTrue(loop.run(until: { (try? self.server.shardSubscriberCount(channel: "s2")) == 0 }, pollMs: 50))
    }

    func testSubscribeBeforeTheLinkIsUpIsSentOnceItIs() throws {
        let s = RecordingSubscriber()
        var confirmed = false
        hub.subscribe(s, kind: .channel, names: ["early"]) { confirmed = true }
        XCTAssertFalse(hub.isLinkHealthy)
        connectLink()
        XCTAssertTrue(loop.run(until: { confirmed }))
        XCTAssertEqual(try publish("early", "bird"), 1)
        XCTAssertTrue(loop.run(until: { s.deliveries.count == 1 }))
        XCTAssertTrue(s.gaps.isEmpty, "nothing was ever confirmed before, so nothing was missed")
    }

    // MARK: link loss

    func testRestartingRedisGivesAGapThenDeliveriesResume() throws {
        connectLink()
        let s = RecordingSubscriber()
        var linkUpAtGap: [Bool] = []
        s.onGap = { _, _ in linkUpAtGap.append(self.hub.isLinkHealthy) }
        subscribe(s, .channel, ["news"])
        subscribe(s, .pattern, ["p-*"])
        subscribe(s, .shard, ["sh"])

        server.stop()
        XCTAssertTrue(loop.run(until: { !self.hub.isLinkHealthy }))
        loop.run(forMs: 200)
        XCTAssertTrue(s.gaps.isEmpty, "a gap is reported once the link is back, not while it is down")

        try server.start()
        XCTAssertTrue(loop.run(until: { s.gaps.count == 3 }, timeoutMs: 10_000), "gaps: \(s.gaps)")
        XCTAssertEqual(linkUpAtGap, [true, true, true])
        XCTAssertEqual(Set(s.gaps.map { "\($0.kind.rawValue):\($0.name)" }), ["channel:news", "pattern:p-*", "shard:sh"])
        XCTAssertEqual(try server.subscriberCount(channel: "news"), 1, "resubscribed after the restart")

        XCTAssertEqual(try publish("news", "after"), 1)
        XCTAssertEqual(try publish("p-1", "after-p"), 1)
        XCTAssertEqual(try publish("sh", "after-s", command: "SPUBLISH"), 1)
        XCTAssertTrue(loop.run(until: { s.deliveries.count == 3 }))
        XCTAssertEqual(Set(s.payloads), ["after", "after-p", "after-s"])
        loop.run(forMs: 50)
        XCTAssertEqual(s.gaps.count, 3, "one gap per topic")
    }

    func testEveryMemberOfATopicHearsTheGap() throws {
        connectLink()
        let a = RecordingSubscriber(), b = RecordingSubscriber()
        subscribe(a, .channel, ["ch"])
        subscribe(b, .channel, ["ch"])
        server.stop()
        XCTAssertTrue(loop.run(until: { !self.hub.isLinkHealthy }))
        try server.start()
        XCTAssertTrue(loop.run(until: { a.gaps.count == 1 && b.gaps.count == 1 }, timeoutMs: 10_000))
        XCTAssertEqual(a.gaps.first?.kind, .channel)
        XCTAssertEqual(a.gaps.first?.name, "ch")
    }

    func testUnsubscribedWhileDownIsNotResubscribed() throws {
        connectLink()
        let a = RecordingSubscriber(), b = RecordingSubscriber()
        subscribe(a, .channel, ["gone"])
        subscribe(b, .channel, ["kept"])
        server.stop()
        XCTAssertTrue(loop.run(until: { !self.hub.isLinkHealthy }))
        hub.unsubscribe(a, kind: .channel, names: ["gone"])
        try server.start()
        XCTAssertTrue(loop.run(until: { b.gaps.count == 1 }, timeoutMs: 10_000))
        XCTAssertEqual(try server.subscriberCount(channel: "gone"), 0)
        XCTAssertEqual(try server.subscriberCount(channel: "kept"), 1)
        XCTAssertTrue(a.gaps.isEmpty)
    }

    func testSubscribedWhileDownIsConfirmedWithoutAGap() throws {
        connectLink()
        server.stop()
        XCTAssertTrue(loop.run(until: { !self.hub.isLinkHealthy }))
        let s = RecordingSubscriber()
        var confirmed = false
        hub.subscribe(s, kind: .channel, names: ["late"]) { confirmed = true }
        try server.start()
        XCTAssertTrue(loop.run(until: { confirmed }, timeoutMs: 10_000))
        loop.run(forMs: 50)
        XCTAssertTrue(s.gaps.isEmpty)
    }

    func testAnsweredPingKeepsTheLink() {
        connectLink()
        let now = Clock.nowMs()
        hub.checkLink(now: now, timeoutMs: 5000)
        loop.run(forMs: 100)
        hub.checkLink(now: now + 10_000, timeoutMs: 5000)
        XCTAssertTrue(hub.isLinkHealthy, "the PONG arrived, so the link is not wedged")
        XCTAssertEqual(hub.reconnects, 0)
    }

    func testUnansweredPingRestartsTheLinkAndReportsAGap() throws {
        connectLink()
        let s = RecordingSubscriber()
        subscribe(s, .channel, ["ch"])
        let now = Clock.nowMs()
        hub.checkLink(now: now, timeoutMs: 5000)
        hub.checkLink(now: now + 1000, timeoutMs: 5000)
        XCTAssertTrue(hub.isLinkHealthy, "not overdue yet")
        hub.checkLink(now: now + 6000, timeoutMs: 5000)
        XCTAssertFalse(hub.isLinkHealthy, "no PONG within the timeout: the link is restarted")
        XCTAssertTrue(loop.run(until: { s.gaps.count == 1 }, timeoutMs: 10_000))
        XCTAssertEqual(hub.reconnects, 1)
        XCTAssertEqual(try publish("ch", "still here"), 1)
        XCTAssertTrue(loop.run(until: { s.deliveries.count == 1 }))
    }

    // MARK: cluster node

    /// On a cluster node SSUBSCRIBE/SUNSUBSCRIBE of names in different slots is CROSSSLOT, so
    /// the Hub must send shards one per command, both ways.
    func testShardsInDifferentSlotsOnAClusterNode() throws {
        hub.stop()
        server.stop()
        server = try RedisServer(clusterNode: true)
        link = RedisConnection(loop: loop, endpoint: server.endpoint(), mode: .pushes, logger: .test())
        hub = Hub(link: link, cluster: nil, loop: loop, logger: .test())
        connectLink()
        XCTAssertNotEqual(try server.cli("CLUSTER", "KEYSLOT", "a"), try server.cli("CLUSTER", "KEYSLOT", "b"))

        let s = RecordingSubscriber()
        subscribe(s, .shard, ["a", "b"])
        XCTAssertEqual(try server.shardSubscriberCount(channel: "a"), 1)
        XCTAssertEqual(try server.shardSubscriberCount(channel: "b"), 1)
        XCTAssertEqual(try publish("b", "in slot 3300", command: "SPUBLISH"), 1)
        XCTAssertTrue(loop.run(until: { s.payloads == ["in slot 3300"] }))

        hub.unsubscribe(s, kind: .shard, names: ["a", "b"])
        XCTAssertTrue(
            loop.run(
                until: {
                    (try? self.server.shardSubscriberCount(channel: "a")) == 0 && (try? self.server.shardSubscriberCount(channel: "b")) == 0
                }, pollMs: 50), "both shard subscriptions must be gone from Redis")
    }
}
