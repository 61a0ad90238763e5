// ReadSchedule: the coalescing behind watches. Any number of changes to a key make one read;
// changes during a read make exactly one more after it; reads per tick are capped fairly; and
// watchers waiting for a snapshot are not told older values first.
@testable import Herald
import XCTest

final class ReadScheduleTests: XCTestCase {
    private let a = Array("a".utf8)
    private let b = Array("b".utf8)
    private let pattern = WatchTarget.pattern(Array("*a".utf8))

    func testManyChangesInOneTickAreOneRead() {
        var schedule = ReadSchedule()
        for _ in 0..<100_000 { schedule.changed(a, via: .key(a), expired: false) }
        XCTAssertEqual(schedule.take(limit: 1000), [a])
        XCTAssertEqual(schedule.take(limit: 1000), [], "no second read while one is in flight")
    }

    func testChangesDuringAReadMakeOneMoreAfterIt() {
        var schedule = ReadSchedule()
        schedule.changed(a, via: .key(a), expired: false)
        XCTAssertEqual(schedule.take(limit: 10), [a])
        for _ in 0..<500 { schedule.changed(a, via: .key(a), expired: false) }
        XCTAssertEqual(schedule.take(limit: 10), [], "waits for the read in flight")
        XCTAssertTrue(schedule.waiting[a] != nil)
        let first = schedule.finished(a)
        XCTAssertEqual(first.targets, [.key(a)])
        XCTAssertEqual(schedule.take(limit: 10), [a], "the last read starts after the last change")
        _ = schedule.finished(a)
        XCTAssertEqual(schedule.take(limit: 10), [])
    }

    func testAudiencesMergeAndExpiryIsKept() {
        var schedule = ReadSchedule()
        let watcher = ObjectIdentifier(NSObject())
        schedule.changed(a, via: .key(a), expired: true)
        schedule.changed(a, via: pattern, expired: false)
        schedule.add(a, ReadAudience(snapshots: [watcher: [7]]))
        _ = schedule.take(limit: 1)
        let audience = schedule.finished(a)
        XCTAssertEqual(audience.targets, [.key(a), pattern])
        XCTAssertEqual(audience.snapshots[watcher], [7])
        XCTAssertTrue(audience.expired)
    }

    func testReadsPerTickAreCappedOldestFirst() {
        var schedule = ReadSchedule()
        let keys = (0..<5).map { Array("k\($0)".utf8) }
        for key in keys { schedule.changed(key, via: .key(key), expired: false) }
        XCTAssertEqual(schedule.take(limit: 2), Array(keys[0..<2]))
        XCTAssertEqual(schedule.take(limit: 2), Array(keys[2..<4]))
        XCTAssertEqual(schedule.take(limit: 2), [keys[4]], "fewer than the limit: nothing more to read")
    }

    func testAKeyBeingReadKeepsItsPlaceInLine() {
        var schedule = ReadSchedule()
        schedule.changed(a, via: .key(a), expired: false)
        XCTAssertEqual(schedule.take(limit: 1), [a])
        schedule.changed(a, via: .key(a), expired: false)
        schedule.changed(b, via: .key(b), expired: false)
        XCTAssertEqual(schedule.take(limit: 1), [b], "a, being read, is passed over")
        _ = schedule.finished(a)
        XCTAssertEqual(schedule.take(limit: 1), [a])
    }

    func testARetriedReadKeepsItsAudience() {
        var schedule = ReadSchedule()
        schedule.changed(a, via: .key(a), expired: false)
        schedule.changed(b, via: .key(b), expired: false)
        XCTAssertEqual(schedule.take(limit: 1), [a])
        schedule.changed(a, via: pattern, expired: false)
        schedule.retry(a)
        XCTAssertEqual(schedule.take(limit: 1), [a], "a read that got no answer goes first again")
        XCTAssertEqual(schedule.finished(a).targets, [.key(a), pattern])
    }

    func testAWatcherAwaitingASnapshotIsNotToldAnOlderChange() {
        var schedule = ReadSchedule()
        let watcher = ObjectIdentifier(NSObject())
        schedule.changed(a, via: .key(a), expired: false)
        _ = schedule.take(limit: 1)
        schedule.add(a, ReadAudience(snapshots: [watcher: [1]]))
        XCTAssertTrue(schedule.awaitsLaterRead(watcher, of: a))
        XCTAssertFalse(schedule.awaitsLaterRead(watcher, of: b))
    }

    func testForgettingAWatcherReturnsItsTickets() {
        var schedule = ReadSchedule()
        let watcher = ObjectIdentifier(NSObject())
        schedule.add(a, ReadAudience(snapshots: [watcher: [1]]))
        schedule.add(b, ReadAudience(snapshots: [watcher: [1, 2]]))
        _ = schedule.take(limit: 1)
        XCTAssertEqual(schedule.forget(watcher).sorted(), [1, 1, 2])
        XCTAssertFalse(schedule.awaitsLaterRead(watcher, of: b))
    }
}
