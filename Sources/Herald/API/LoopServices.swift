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
        streams = StreamServices(
            redis: redis, tailer: tailer, loop: loop, claimIdleMs: config.claimIdleMs, maxOutbound: config.maxOutbound,
            blocking: blocking)
        queues = QueueServices(redis: redis, blocking: blocking, leases: leases, loop: loop, logger: logger, drain: drain)
        self.hub = hub
        self.redis = redis
        maxSubscriptions = config.maxSubscriptions
        maxConnections = config.maxConnections
        self.process = process
    }
}
