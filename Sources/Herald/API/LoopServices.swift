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
    /// `--idempotency-ttl`, ms, for ops with an `idempotency_key`.
    var idempotencyTtlMs: Int64 = 86_400_000
}

/// What a subscriber session uses of its loop, one reference for the many sessions of a loop
/// (each would otherwise carry eight); confined to that loop.
final class SessionServices {
    let hub: Hub
    let publisher: Publisher
    let streams: StreamServices
    let queues: QueueServices
    let tokens: TokenServices
    let presence: PresenceService
    let watches: WatchRegistry
    /// `--max-subscriptions`: of every kind together.
    let maxSubscriptions: Int

    init(
        hub: Hub, publisher: Publisher, streams: StreamServices, queues: QueueServices, tokens: TokenServices, presence: PresenceService,
        watches: WatchRegistry, maxSubscriptions: Int
    ) {
        self.hub = hub
        self.publisher = publisher
        self.streams = streams
        self.queues = queues
        self.tokens = tokens
        self.presence = presence
        self.watches = watches
        self.maxSubscriptions = maxSubscriptions
    }
}

/// One loop's services for the API layer; confined to that loop.
public final class LoopServices {
    let publisher: Publisher
    let streams: StreamServices
    let queues: QueueServices
    let tokens: TokenServices
    let hub: Hub
    /// Presence members, leases and events of this loop.
    let presence: PresenceService
    /// Watched keys of this loop.
    let watches: WatchRegistry
    /// For the endpoints that answer straight from one command (stream appends and ranges).
    let redis: CommandSender
    /// `--max-subscriptions` and `--max-connections`.
    let maxSubscriptions: Int
    let maxConnections: Int
    /// Every loop's counters, for `/readyz` and `/metrics`.
    let process: ProcessStats
    /// The backend's authorization hook, with `--hook-url`.
    let hooks: Hooks?
    /// `--idempotency-ttl`, ms.
    let idempotencyTtlMs: Int64
    /// What subscriber sessions use.
    let sessions: SessionServices

    public init(
        config: Config, loop: EventLoop, logger: Logger, stats: LoopStats, process: ProcessStats, redis: CommandSender,
        hub: Hub, tailer: StreamTailer, blocking: BlockingPool, leases: QueueLeases, drain: DrainClock
    ) {
        watches = WatchRegistry(
            loop: loop, redis: redis, cluster: redis as? ClusterCommands, endpoint: config.redis[0],
            limits: WatchLimits(
                maxKeys: config.maxWatchKeys, maxValue: config.maxWatchValue, setEvents: config.keyspaceEvents, maxPending: config.maxPending),
            stats: stats, logger: logger)
        publisher = Publisher(redis: redis, maxPending: config.maxPending, stats: stats, idempotencyTtlMs: config.idempotencyTtlMs)
        streams = StreamServices(
            redis: redis, tailer: tailer, loop: loop, claimIdleMs: config.claimIdleMs, maxOutbound: config.maxOutbound,
            blocking: blocking)
        queues = QueueServices(redis: redis, blocking: blocking, leases: leases, loop: loop, logger: logger, drain: drain)
        tokens = TokenServices(access: config.access, warningMs: config.tokenWarningMs, loop: loop)
        self.hub = hub
        presence = PresenceService(redis: redis, hub: hub, loop: loop, ttlMs: config.presenceTtlMs, stats: stats, logger: logger)
        self.redis = redis
        maxSubscriptions = config.maxSubscriptions
        maxConnections = config.maxConnections
        self.process = process
        idempotencyTtlMs = config.idempotencyTtlMs
        sessions = SessionServices(
            hub: hub, publisher: publisher, streams: streams, queues: queues, tokens: tokens, presence: presence, watches: watches,
            maxSubscriptions: config.maxSubscriptions)
        // The host was resolved once at start (Server.run) to refuse a bad one; each loop
        // resolves it again here, off the request path.
        hooks = config.hookURL.flatMap { target in
            guard let address = try? target.resolve() else {
                logger.error("the hook host does not resolve: every hook call is refused", metadata: ["hook": "\(target)"])
                return nil
            }
            let client = HookClient(loop: loop, target: target, address: address, timeoutMs: config.hookTimeoutMs, logger: logger)
            return Hooks(events: config.hookEvents, client: client, stats: stats)
        }
    }
}
