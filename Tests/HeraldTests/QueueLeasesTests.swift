// QueueLeases against a real redis-server: registration with a lease on Redis's clock, putting
// a worker's items back in order, reaping only lists whose lease ran out, and counting a script
// Redis refuses.
import Herald
import HeraldTestSupport
import XCTest

final class QueueLeasesTests: XCTestCase {
    private var bed: RedisTestbed!

    override func setUpWithError() throws { bed = try RedisTestbed() }
    override func tearDown() { bed?.stop() }

    private func leases(leaseMs: Int64 = 30_000) -> QueueLeases {
        QueueLeases(redis: bed.link, loop: bed.loop, leaseMs: leaseMs, logger: .test())
    }

    @discardableResult
    private func call(_ arguments: any RedisArgument...) -> RedisReply? {
        bed.call(arguments.map { String(decoding: $0.argumentBytes, as: UTF8.self) })
    }

    /// Waits until every command sent so far is answered (a PING behind them).
    private func settle() { call("PING") }

    private func list(_ key: RedisName) -> [String] {
        guard case .array(let items)? = call("LRANGE", key, "0", "-1") else { return [] }
        return items.compactMap(\.text)
    }

    func testRenewRegistersTheListUntilALeaseFromNowOnRedisClock() throws {
        let leases = leases(leaseMs: 30_000)
        let processing = QueueKeys.processingList("jobs", id: "w1")
        leases.renew(processing, of: "jobs")
        settle()
        guard case .array(let time)? = call("TIME"), let seconds = time.first?.text.flatMap(Int64.init) else {
            return XCTFail("no TIME")
        }
        let score = try XCTUnwrap(call("ZSCORE", QueueKeys.registry("jobs"), processing)?.text.flatMap(Double.init))
        XCTAssertEqual(score / 1000, Double(seconds + 30), accuracy: 2, "lease end = Redis now + 30 s")
    }

    func testPutBackReturnsItemsOldestAtThePopEndAndUnregisters() {
        let leases = leases()
        let processing = QueueKeys.processingList("jobs", id: "w1")
        leases.renew(processing, of: "jobs")
        // A worker's list holds its newest item at the left (BLMOVE ... RIGHT LEFT).
        call("LPUSH", processing, "first", "second")
        call("LPUSH", "jobs", "later")
        leases.putBack(processing, of: "jobs")
        settle()
        XCTAssertEqual(list("jobs"), ["later", "second", "first"], "RPOP takes first, then second, then later")
        XCTAssertEqual(list(processing), [])
        XCTAssertEqual(call("ZSCORE", QueueKeys.registry("jobs"), processing), .null)
    }

    func testReapTakesOnlyListsWhoseLeaseRanOut() {
        let leases = leases(leaseMs: 300)
        let dead = QueueKeys.processingList("jobs", id: "dead")
        let live = QueueKeys.processingList("jobs", id: "live")
        call("ZADD", QueueKeys.registry("jobs"), "1", dead)  // ended long ago
        call("LPUSH", dead, "held")
        leases.renew(live, of: "jobs")
        call("LPUSH", live, "busy")
        leases.reapIfDue("jobs")
        settle()
        XCTAssertEqual(list("jobs"), ["held"])
        XCTAssertEqual(list(live), ["busy"], "a renewed list is never reaped")
        XCTAssertEqual(call("ZSCORE", QueueKeys.registry("jobs"), dead), .null)
    }

    func testAScriptRedisRefusesIsCounted() {
        let leases = leases()
        call("SET", QueueKeys.registry("jobs"), "not a sorted set")
        leases.renew(QueueKeys.processingList("jobs", id: "w1"), of: "jobs")
        settle()
        XCTAssertEqual(leases.scriptErrors, 1)
    }
}
