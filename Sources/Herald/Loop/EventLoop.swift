// The event loop: one epoll instance, file events, timers and end-of-tick tasks, on one thread.
// Its whole API: register/modify/unregister a file event, schedule a timer, defer work to the
// end of the current tick, run until stopped. Other threads reach it only through `LoopHandle`.
import CHiredis
import Glibc
import Synchronization

/// Something that owns a file descriptor registered with an `EventLoop`.
public protocol IOHandler: AnyObject {
    /// Called on the loop's thread with the ready epoll events (`EPOLLIN`, `EPOLLOUT`, ...).
    func handleEvents(_ events: UInt32)
}

/// Readiness flags, as epoll spells them.
public enum IOEvents {
    public static let readable = UInt32(EPOLLIN.rawValue)
    public static let writable = UInt32(EPOLLOUT.rawValue)
    public static let hangup = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue) | UInt32(EPOLLRDHUP.rawValue)
    /// The connection is reset or shut both ways; reported even when nothing is asked for.
    public static let failed = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue)
}

/// The thread-safe face of a loop: other threads may ask it to stop, and nothing else.
public final class LoopHandle: Sendable {
    /// eventfd the loop polls; writing to it wakes `epoll_wait`.
    let wakeFD: Int32
    /// Set once by another thread to ask the loop to drain and stop.
    let stopRequested = Atomic<Bool>(false)

    public init() {
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
    }

    /// Asks the loop to drain and stop; safe from any thread.
    public func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }
}

/// One epoll loop. Confined to the thread that calls `run()`: every method except those of
/// `handle` must be called on that thread.
public final class EventLoop {
    public let handle: LoopHandle
    private let epfd: Int32
    /// Handlers indexed by file descriptor (dense: the kernel hands out the lowest free fd).
    private var handlers: [IOHandler?] = []
    /// Pending timers: a binary min-heap ordered by (deadline, id) — ids rise, so timers due
    /// at the same ms run in the order they were scheduled — and their actions by id.
    /// Cancelling drops the action at once (releasing what it captured); its heap entry is
    /// skipped when it comes up. Scheduling and cancelling are O(log n) and O(1), however many
    /// timers the loop's connections hold.
    private var timerHeap: [TimerEntry] = []
    private var timerActions: [Int: () -> Void] = [:]
    private var nextTimerID = 0
    private var endOfTick: [() -> Void] = []
    private var running = false
    /// The thread this loop is confined to: the one that created it, then the one running it.
    private var owner = pthread_self()
    /// Called once when another thread requests a stop.
    public var onStopRequested: (() -> Void)?

    private struct TimerEntry {
        /// Monotonic deadline, milliseconds.
        let deadline: Int64
        let id: Int

        func precedes(_ other: TimerEntry) -> Bool { deadline != other.deadline ? deadline < other.deadline : id < other.id }
    }

    public init(handle: LoopHandle = LoopHandle()) throws {
        self.handle = handle
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SocketError("epoll_create1") }
        try register(fd: handle.wakeFD, handler: WakeHandler(loop: self), events: IOEvents.readable)
    }

    deinit {
        Glibc.close(epfd)
        Glibc.close(handle.wakeFD)
    }

    /// Whether the caller runs on this loop's thread.
    public var isOnLoopThread: Bool { pthread_equal(owner, pthread_self()) != 0 }

    /// Debug builds stop at once when a loop-confined object is touched from another thread
    /// (release builds compile this away). Every loop method calls it, and so do the objects
    /// that change shared loop state without one (the Hub).
    @inline(__always)
    public func assertConfined(file: StaticString = #fileID, line: UInt = #line) {
        assert(isOnLoopThread, "a loop-confined object was used off its loop's thread", file: file, line: line)
    }

    public func register(fd: Int32, handler: IOHandler, events: UInt32) throws {
        assertConfined()
        let index = Int(fd)
        if index >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: index + 64 - handlers.count)) }
        handlers[index] = handler
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        guard epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0 else {
            handlers[index] = nil
            throw SocketError("epoll_ctl(ADD)")
        }
    }

    public func modify(fd: Int32, events: UInt32) {
        assertConfined()
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event)
    }

    public func unregister(fd: Int32) {
        assertConfined()
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
        if Int(fd) < handlers.count { handlers[Int(fd)] = nil }
    }

    /// Runs `action` on this loop after `milliseconds`. Returns an id for `cancelTimer`.
    @discardableResult
    public func schedule(afterMs milliseconds: Int64, _ action: @escaping () -> Void) -> Int {
        assertConfined()
        nextTimerID += 1
        timerActions[nextTimerID] = action
        timerHeap.append(TimerEntry(deadline: Clock.nowMs() + milliseconds, id: nextTimerID))
        siftUp(timerHeap.count - 1)
        return nextTimerID
    }

    public func cancelTimer(_ id: Int) {
        assertConfined()
        guard timerActions.removeValue(forKey: id) != nil else { return }
        // Cancelled entries wait in the heap until they come up; rebuild it when they outnumber
        // the live ones, so a loop that keeps rescheduling far-off timers stays small.
        if timerHeap.count > 2 * timerActions.count + 64 { compactTimers() }
    }

    /// Timers scheduled and not yet run or cancelled.
    public var pendingTimers: Int { timerActions.count }

    /// Runs `action` once the events of the current tick are handled, e.g. to flush a Redis
    /// pipeline once for all the publishes one tick produced.
    public func deferToEndOfTick(_ action: @escaping () -> Void) {
        assertConfined()
        endOfTick.append(action)
    }

    /// Processes events until `stop()` is called on this thread.
    public func run() {
        owner = pthread_self()
        running = true
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while running {
            var timeout: Int32 = -1
            if !endOfTick.isEmpty {
                timeout = 0
            } else if let deadline = nextTimerDeadline() {
                timeout = Int32(clamping: max(0, deadline - Clock.nowMs()))
            }
            let n = epoll_wait(epfd, events, Int32(capacity), timeout)
            if n < 0 && errno != EINTR { break }
            for i in 0..<max(0, Int(n)) {
                let fd = Int(events[i].data.fd)
                guard fd < handlers.count, let handler = handlers[fd] else { continue }
                handler.handleEvents(events[i].events)
            }
            runDueTimers()
            while !endOfTick.isEmpty {
                let tasks = endOfTick
                endOfTick.removeAll(keepingCapacity: true)
                for task in tasks { task() }
            }
        }
    }

    public func stop() { running = false }

    /// Runs due timers one at a time, so a timer cancelled by an earlier one of the same pass
    /// (its action is gone) does not run.
    private func runDueTimers() {
        let now = Clock.nowMs()
        while let deadline = nextTimerDeadline(), deadline <= now {
            let id = popTimer().id
            if let action = timerActions.removeValue(forKey: id) { action() }
        }
    }

    /// The earliest live deadline, after dropping cancelled entries from the top.
    private func nextTimerDeadline() -> Int64? {
        while let top = timerHeap.first {
            if timerActions[top.id] != nil { return top.deadline }
            _ = popTimer()
        }
        return nil
    }

    private func popTimer() -> TimerEntry {
        let top = timerHeap[0]
        let last = timerHeap.removeLast()
        if !timerHeap.isEmpty {
            timerHeap[0] = last
            siftDown(0)
        }
        return top
    }

    private func siftUp(_ start: Int) {
        var child = start
        let entry = timerHeap[child]
        while child > 0 {
            let parent = (child - 1) / 2
            guard entry.precedes(timerHeap[parent]) else { break }
            timerHeap[child] = timerHeap[parent]
            child = parent
        }
        timerHeap[child] = entry
    }

    private func siftDown(_ start: Int) {
        var parent = start
        let entry = timerHeap[parent]
        let count = timerHeap.count
        while true {
            var child = 2 * parent + 1
            guard child < count else { break }
            if child + 1 < count && timerHeap[child + 1].precedes(timerHeap[child]) { child += 1 }
            guard timerHeap[child].precedes(entry) else { break }
            timerHeap[parent] = timerHeap[child]
            parent = child
        }
        timerHeap[parent] = entry
    }

    private func compactTimers() {
        timerHeap.removeAll { timerActions[$0.id] == nil }
        for index in stride(from: timerHeap.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    fileprivate func wakeRequested() {
        var value: UInt64 = 0
        _ = read(handle.wakeFD, &value, 8)
        if handle.stopRequested.load(ordering: .acquiring), let onStop = onStopRequested {
            onStopRequested = nil
            onStop()
        }
    }
}

/// Drains the loop's eventfd when another thread wakes it.
private final class WakeHandler: IOHandler {
    unowned let loop: EventLoop
    init(loop: EventLoop) { self.loop = loop }
    func handleEvents(_ events: UInt32) { loop.wakeRequested() }
}
