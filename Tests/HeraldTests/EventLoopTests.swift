// EventLoop: timers in deadline order and cancellable, end-of-tick tasks, file events, and a
// stop requested from another thread.
import Dispatch
import Glibc
import Herald
import HeraldTestSupport
import XCTest

/// Records the epoll events its descriptor reports.
private final class RecordingHandler: IOHandler {
    var events: [UInt32] = []
    var onEvents: ((UInt32) -> Void)?
    func handleEvents(_ events: UInt32) {
        self.events.append(events)
        onEvents?(events)
    }
}

final class EventLoopTests: XCTestCase {
    private var loop: EventLoop!
    private var descriptors: [Int32] = []

    override func setUpWithError() throws {
        loop = try EventLoop()
    }

    override func tearDown() {
        for fd in descriptors { close(fd) }
        descriptors = []
        loop = nil
    }

    func testTimersFireInDeadlineOrder() {
        var fired: [String] = []
        loop.schedule(afterMs: 30) { fired.append("30") }
        loop.schedule(afterMs: 10) { fired.append("10") }
        loop.schedule(afterMs: 20) { fired.append("20a") }
        loop.schedule(afterMs: 20) { fired.append("20b") }
        XCTAssertTrue(loop.run(until: { fired.count == 4 }, timeoutMs: 1000))
        XCTAssertEqual(fired, ["10", "20a", "20b", "30"])
    }

    func testTimerDoesNotFireEarly() {
        let start = Clock.nowMs()
        var firedAt: Int64?
        loop.schedule(afterMs: 50) { firedAt = Clock.nowMs() }
        XCTAssertTrue(loop.run(until: { firedAt != nil }, timeoutMs: 1000))
        XCTAssertGreaterThanOrEqual(firedAt! - start, 50)
    }

    func testCancelledTimerDoesNotFire() {
        var fired = false
        let id = loop.schedule(afterMs: 20) { fired = true }
        loop.cancelTimer(id)
        loop.run(forMs: 60)
        XCTAssertFalse(fired)
    }

    /// Two timers due in the same tick: the first cancels the second, which must then not run
    /// (e.g. a connect-timeout cancelled by a handler that ran just before it).
    func testTimerCancelledByAnEarlierTimerOfTheSameTickDoesNotFire() {
        var secondFired = false
        var second = 0
        loop.schedule(afterMs: 10) { [unowned loop = self.loop!] in loop.cancelTimer(second) }
        second = loop.schedule(afterMs: 10) { secondFired = true }
        usleep(20_000)
        loop.run(forMs: 30)
        XCTAssertFalse(secondFired)
    }

    /// Thousands of timers scheduled in shuffled order, some cancelled: the rest fire in
    /// deadline order (same-ms ones in scheduling order), each once.
    func testManyShuffledTimersFireInDeadlineThenSchedulingOrder() {
        var fired: [Int] = []
        var expected: [(deadline: Int64, seq: Int)] = []
        let start = Clock.nowMs()
        var early = 0
        var ids: [Int] = []
        for seq in 0..<3000 {
            let after = Int64.random(in: 0...40)
            ids.append(
                loop.schedule(afterMs: after) {
                    if Clock.nowMs() < start + after { early += 1 }
                    fired.append(seq)
                })
            expected.append((after, seq))
        }
        var cancelled = Set<Int>()
        for seq in stride(from: 0, to: 3000, by: 7) {
            loop.cancelTimer(ids[seq])
            cancelled.insert(seq)
        }
        XCTAssertEqual(loop.pendingTimers, 3000 - cancelled.count)
        XCTAssertTrue(loop.run(until: { fired.count == 3000 - cancelled.count }, timeoutMs: 2000))
        // Scheduling takes a few ms, so deadlines are `after` plus when each was scheduled:
        // within one `after`, a later-scheduled timer is due no earlier, and runs after.
        XCTAssertEqual(early, 0)
        XCTAssertEqual(fired.count, Set(fired).count)
        XCTAssertEqual(Set(fired), Set(expected.map(\.seq)).subtracting(cancelled))
        var lastSeqByAfter: [Int64: Int] = [:]
        for seq in fired {
            let after = expected[seq].deadline
            XCTAssertLessThan(lastSeqByAfter[after] ?? -1, seq, "timers due alike ran out of scheduling order")
            lastSeqByAfter[after] = seq
        }
        XCTAssertEqual(loop.pendingTimers, 0)
    }

    /// Cancelling lets go of what the action captured at once (a link held by its reconnect
    /// timer must be freed when the timer is cancelled, not when it would have fired).
    func testCancellingReleasesTheActionAtOnce() {
        final class Token {}
        weak var weakToken: Token?
        var id = 0
        do {
            let token = Token()
            weakToken = token
            id = loop.schedule(afterMs: 60_000) { _ = token }
        }
        XCTAssertNotNil(weakToken)
        loop.cancelTimer(id)
        XCTAssertNil(weakToken)
        // Scheduling and cancelling far-off timers over and over leaves nothing pending.
        for _ in 0..<100_000 { loop.cancelTimer(loop.schedule(afterMs: 60_000) {}) }
        XCTAssertEqual(loop.pendingTimers, 0)
    }

    func testEndOfTickTasksRunInOrderIncludingOnesTheyDefer() {
        var order: [String] = []
        loop.schedule(afterMs: 0) { [unowned loop = self.loop!] in
            loop.deferToEndOfTick {
                order.append("first")
                loop.deferToEndOfTick { order.append("nested") }
            }
            loop.deferToEndOfTick { order.append("second") }
            order.append("timer")
        }
        XCTAssertTrue(loop.run(until: { order.count == 4 }, timeoutMs: 1000))
        XCTAssertEqual(order, ["timer", "first", "second", "nested"])
    }

    func testFileEventsReachTheirHandlerUntilUnregistered() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        descriptors += fds
        let handler = RecordingHandler()
        var read: [UInt8] = []
        handler.onEvents = { _ in
            var byte: UInt8 = 0
            if Glibc.read(fds[0], &byte, 1) == 1 { read.append(byte) }
        }
        try loop.register(fd: fds[0], handler: handler, events: IOEvents.readable)
        var one: UInt8 = 42
        XCTAssertEqual(write(fds[1], &one, 1), 1)
        XCTAssertTrue(loop.run(until: { read == [42] }, timeoutMs: 1000))
        XCTAssertNotEqual(handler.events.first.map { $0 & IOEvents.readable }, 0)

        loop.unregister(fd: fds[0])
        one = 43
        XCTAssertEqual(write(fds[1], &one, 1), 1)
        loop.run(forMs: 50)
        XCTAssertEqual(read, [42], "no events after unregister")
    }

    func testModifyChangesTheEventsWatched() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        descriptors += fds
        let handler = RecordingHandler()
        try loop.register(fd: fds[1], handler: handler, events: 0)
        loop.run(forMs: 30)
        XCTAssertTrue(handler.events.isEmpty, "nothing watched, nothing reported")
        loop.modify(fd: fds[1], events: IOEvents.writable)
        handler.onEvents = { [unowned loop = self.loop!] _ in loop.modify(fd: fds[1], events: 0) }
        XCTAssertTrue(loop.run(until: { !handler.events.isEmpty }, timeoutMs: 1000))
        XCTAssertNotEqual(handler.events[0] & IOEvents.writable, 0)
        loop.unregister(fd: fds[1])
    }

    func testStopRequestedFromAnotherThreadRunsOnTheLoop() {
        let loopThread = pthread_self()
        var ranOnLoopThread: Bool?
        loop.onStopRequested = { ranOnLoopThread = pthread_equal(pthread_self(), loopThread) != 0 }
        let handle = loop.handle
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(30)) { handle.requestStop() }
        XCTAssertTrue(loop.run(until: { ranOnLoopThread != nil }, timeoutMs: 2000))
        XCTAssertEqual(ranOnLoopThread, true)
    }

    func testConfinedToTheThreadThatRunsIt() {
        XCTAssertTrue(loop.isOnLoopThread, "the creating thread owns it until run()")
        /// Hands the loop to another thread only to ask it the question (safe: read-only).
        final class Probe: @unchecked Sendable {
            let loop: EventLoop
            var answer: Bool?
            init(_ loop: EventLoop) { self.loop = loop }
        }
        let probe = Probe(loop)
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            probe.answer = probe.loop.isOnLoopThread
            done.signal()
        }
        done.wait()
        XCTAssertEqual(probe.answer, false, "another thread is not the loop's")
        loop.run(forMs: 5)
        XCTAssertTrue(loop.isOnLoopThread, "the thread running it owns it")
    }
}
