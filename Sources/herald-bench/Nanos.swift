// Monotonic nanoseconds: the clock payloads carry and latencies are measured on. Every bench
// process on the machine reads the same clock, so a send time from one process is comparable
// with a receive time in another.
import Glibc

enum Nanos {
    /// Monotonic clock, nanoseconds.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func seconds(_ from: UInt64, _ to: UInt64) -> Double {
        to > from ? Double(to - from) / 1e9 : 0
    }

    /// Sleeps the calling thread (the main thread only; loops never sleep).
    static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
