// Drives an EventLoop on the test's own thread until something is true, with a deadline, so
// a test reads as "do X, run until Y" without threads or sleeps.
import Herald

extension EventLoop {
    /// Runs the loop on this thread until `condition` holds or `timeoutMs` passes, checking it
    /// every `pollMs`. Returns the final value of `condition`.
    @discardableResult
    public func run(until condition: @escaping () -> Bool, timeoutMs: Int64 = 5000, pollMs: Int64 = 5) -> Bool {
        let deadline = Clock.nowMs() + timeoutMs
        func poll() {
            if condition() || Clock.nowMs() >= deadline {
                stop()
            } else {
                schedule(afterMs: pollMs, poll)
            }
        }
        schedule(afterMs: 0, poll)
        run()
        return condition()
    }

    /// Runs the loop on this thread for `milliseconds`, e.g. to show that nothing happens.
    public func run(forMs milliseconds: Int64) {
        schedule(afterMs: milliseconds) { [unowned self] in self.stop() }
        run()
    }
}
