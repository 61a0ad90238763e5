// What queue pops and queue workers are handed when they are built (by the loop's
// LoopServices): the few services they use, so they reach nothing else of the loop.
import Logging

/// Whether the loop's drain has run out of time (SIGTERM, then 5 s): set by the loop's context,
/// read by pops whose wait it cut short.
public final class DrainClock {
    public internal(set) var expired = false
    public init() {}
    public func expire() { expired = true }
}

/// What queue pops and queue workers use.
struct QueueServices {
    let redis: CommandSender
    /// Capped connections for waiting pops.
    let blocking: BlockingPool
    let leases: QueueLeases
    /// For lease renewals and put-back retries.
    let loop: EventLoop
    let logger: Logger
    let drain: DrainClock
}
