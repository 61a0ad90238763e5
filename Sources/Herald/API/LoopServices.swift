// What one loop offers its request handlers and sessions: its Redis links and the tables built
// on them, grouped by who uses them. The loop's context builds this once and hands it to its
// router; each handler and session then gets only its group, so nothing above the loop reaches
// the loop's world through a connection.
import Logging

/// Publishing: where PUBLISH goes, how many commands may wait, and the publish counters.
struct Publisher {
    let redis: CommandSender
    /// `--max-pending`: commands of this loop waiting on Redis before publishes answer 503.
    let maxPending: Int
    let stats: LoopStats
}

/// What stream readers and consumer-group members use.
struct StreamServices {
    let redis: CommandSender
    /// The loop's one tail over every live stream.
    let tailer: StreamTailer
    /// For retries and the group's claim timer.
    let loop: EventLoop
    /// `--claim-idle`, ms.
    let claimIdleMs: Int64
    /// `--max-outbound`: a reader joins the live tail only while half of it is free.
    let maxOutbound: Int
}

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

/// One loop's services for the API layer; confined to that loop.
public final class LoopServices {
    let publisher: Publisher
    let streams: StreamServices
    let queues: QueueServices
    let hub: Hub
    /// For the endpoints that answer straight from one command (stream appends and ranges).
    let redis: CommandSender
    /// `--max-subscriptions` and `--max-connections`.
    let maxSubscriptions: Int
    let maxConnections: Int
    /// Every loop's counters, for `/readyz` and `/metrics`.
    let process: ProcessStats

    public init(
        config: Config, loop: EventLoop, logger: Logger, stats: LoopStats, process: ProcessStats, redis: CommandSender,
        hub: Hub, tailer: StreamTailer, blocking: BlockingPool, leases: QueueLeases, drain: DrainClock
    ) {
        publisher = Publisher(redis: redis, maxPending: config.maxPending, stats: stats)
        streams = StreamServices(redis: redis, tailer: tailer, loop: loop, claimIdleMs: config.claimIdleMs, maxOutbound: config.maxOutbound)
        queues = QueueServices(redis: redis, blocking: blocking, leases: leases, loop: loop, logger: logger, drain: drain)
        self.hub = hub
        self.redis = redis
        maxSubscriptions = config.maxSubscriptions
        maxConnections = config.maxConnections
        self.process = process
    }
}
