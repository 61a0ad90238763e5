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
    private var timers: [Timer] = []
    private var nextTimerID = 0
    private var endOfTick: [() -> Void] = []
    private var running = false
    /// The thread this loop is confined to: the one that created it, then the one running it.
    private var owner = pthread_self()
    /// Called once when another thread requests a stop.
    public var onStopRequested: (() -> Void)?

    private struct Timer {
        let id: Int
        /// Monotonic deadline, milliseconds.
        let deadline: Int64
        let action: () -> Void
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
        let timer = Timer(id: nextTimerID, deadline: Clock.nowMs() + milliseconds, action: action)
        let index = timers.firstIndex { $0.deadline > timer.deadline } ?? timers.count
        timers.insert(timer, at: index)
        return timer.id
    }

    public func cancelTimer(_ id: Int) {
        timers.removeAll { $0.id == id }
    }

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
            } else if let first = timers.first {
                timeout = Int32(clamping: max(0, first.deadline - Clock.nowMs()))
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
    /// (it has left `timers`) does not run.
    private func runDueTimers() {
        let now = Clock.nowMs()
        while let first = timers.first, first.deadline <= now {
            timers.removeFirst()
            first.action()
        }
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
