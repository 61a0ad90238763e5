// What the main thread and the bench loops share: the run's phase (set by the main thread,
// polled by every loop on its 1 ms tick) and each loop's running totals (written by that loop
// on its tick, read by the main thread to decide when a phase is over). Atomics only, no locks.
import Synchronization

/// The run's phases, in order.
enum Phase: Int {
    case connect = 0, publish, drain, stop
}

/// Set by the main thread, read by every loop.
final class Control: Sendable {
    let phase = Atomic<Int>(Phase.connect.rawValue)
    /// Monotonic ns when publishing starts (set before the phase moves to `.publish`).
    let publishStartNs = Atomic<UInt64>(0)

    var current: Phase { Phase(rawValue: phase.load(ordering: .acquiring)) ?? .stop }

    func move(to next: Phase) { phase.store(next.rawValue, ordering: .releasing) }
}

/// One loop's totals so far, published on its tick.
final class LoopTotals: Sendable {
    /// Subscribers confirmed (subscribed answer, or upgraded for Nchan).
    let subscribed = Atomic<Int>(0)
    /// Subscribers that failed before being confirmed.
    let failed = Atomic<Int>(0)
    /// Publisher connections established at least once.
    let publishersUp = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let published = Atomic<Int>(0)
    /// Monotonic ns of the last delivery received.
    let lastDeliveryNs = Atomic<UInt64>(0)
    /// True once publishing has ended and no request is in flight.
    let publishersDone = Atomic<Bool>(false)
}
