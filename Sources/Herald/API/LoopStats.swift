// Counters and link states one loop publishes for the rest of the process (/metrics, /readyz).
// Written only by the owning loop, read by any: atomics, and a lock only for the reasons a link
// is down (written when it fails, read by /readyz).
import Synchronization

/// One loop's figures, readable from any thread.
public final class LoopStats: Sendable {
    /// 1 while the loop's command link to Redis is ready.
    public let commandLinkUp = Atomic<Int>(0)
    /// 1 while the loop's subscriber link to Redis is ready.
    public let subscriberLinkUp = Atomic<Int>(0)
    /// Why the command link, and the subscriber link, last went down (e.g. a TLS refusal).
    public let commandLinkError = Mutex("not connected yet")
    public let subscriberLinkError = Mutex("not connected yet")
    public let httpConnections = Atomic<Int>(0)
    public let webSocketConnections = Atomic<Int>(0)
    public let eventStreams = Atomic<Int>(0)
    public let requests = Atomic<Int>(0)
    public let published = Atomic<Int>(0)
    public let publishErrors = Atomic<Int>(0)
    public let delivered = Atomic<Int>(0)
    public let dropped = Atomic<Int>(0)
    /// WebSockets that agreed to permessage-deflate.
    public let compressedConnections = Atomic<Int>(0)
    /// Messages compressed (once per delivery however many subscribers get it), the bytes of
    /// compressed frames queued to clients, and what those frames would have taken uncompressed.
    public let compressions = Atomic<Int>(0)
    public let compressedBytes = Atomic<Int>(0)
    public let uncompressedBytes = Atomic<Int>(0)
    /// Pub/sub messages from Redis by kind (copied from the Hub by housekeeping).
    public let receivedChannel = Atomic<Int>(0)
    public let receivedPattern = Atomic<Int>(0)
    public let receivedShard = Atomic<Int>(0)
    /// Error replies from Redis on any link.
    public let redisErrors = Atomic<Int>(0)
    /// Queue lease scripts (renew, reap, put back) Redis refused.
    public let queueLeaseErrors = Atomic<Int>(0)
    /// Publish latency (request in to Redis reply), a Prometheus histogram.
    public let publishLatency = LatencyHistogram()
    public let channels = Atomic<Int>(0)
    public let patterns = Atomic<Int>(0)
    public let shards = Atomic<Int>(0)
    public let redisReconnects = Atomic<Int>(0)
    /// Calls to the authorization hook, the ones it refused (401/403), and the ones that got no
    /// usable answer (failed, timed out, another status); and how long each took.
    public let hookCalls = Atomic<Int>(0)
    public let hookRefusals = Atomic<Int>(0)
    public let hookFailures = Atomic<Int>(0)
    public let hookLatency = LatencyHistogram()
    /// Presence members held by this loop's connections, and the channels they are in.
    public let presenceMembers = Atomic<Int>(0)
    public let presenceChannels = Atomic<Int>(0)
    /// Presence scripts Redis refused (the next refresh repairs what they left).
    public let presenceErrors = Atomic<Int>(0)
    /// Distinct watched keys and patterns held, keyspace notifications heard, and watched
    /// values read (after coalescing).
    public let watchKeys = Atomic<Int>(0)
    public let watchPatterns = Atomic<Int>(0)
    public let watchNotifications = Atomic<Int>(0)
    public let watchReads = Atomic<Int>(0)
    /// Under Sentinel, what the loop knows of the master (or why it has none), for `/readyz`.
    private let redisStatus = Mutex("")

    public init() {}

    public func setRedisStatus(_ text: String) { redisStatus.withLock { if $0 != text { $0 = text } } }
    public var redisStatusText: String { redisStatus.withLock { $0 } }
}

extension Atomic where Value == Int {
    /// A relaxed counter bump: these are statistics, never used to synchronise.
    func bump(_ n: Int = 1) { add(n, ordering: .relaxed) }
    func set(_ n: Int) { store(n, ordering: .relaxed) }
    var value: Int { load(ordering: .relaxed) }
}

/// Every loop's stats, for the endpoints that report on the whole process.
public final class ProcessStats: Sendable {
    public let loops: [LoopStats]
    /// Process start, monotonic ms.
    public let startedAt: Int64

    public init(loopCount: Int) {
        loops = (0..<loopCount).map { _ in LoopStats() }
        startedAt = Clock.nowMs()
    }

    public func total(_ counter: (LoopStats) -> Int) -> Int {
        loops.reduce(0) { $0 + counter($1) }
    }

    /// Ready when every loop's command and subscriber links to Redis are up.
    public var isReady: Bool {
        loops.allSatisfy { $0.commandLinkUp.value == 1 && $0.subscriberLinkUp.value == 1 }
    }
}

/// A Prometheus histogram of durations with fixed buckets; written by its loop, read by any.
/// A mutex (uncontended on the hot path: only /metrics reads it) since atomics cannot be stored
/// in an array.
public final class LatencyHistogram: Sendable {
    /// Upper bounds of the buckets, seconds.
    public static let bounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    private struct Counts {
        /// Observations per bucket (not cumulative); the last slot is above every bound.
        var buckets = [Int](repeating: 0, count: LatencyHistogram.bounds.count + 1)
        var sumMicros = 0
    }

    private let counts = Mutex(Counts())

    public init() {}

    public func observe(micros: Int) {
        let seconds = Double(micros) / 1_000_000
        let i = Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count
        counts.withLock {
            $0.buckets[i] += 1
            $0.sumMicros += micros
        }
    }

    /// Per-bucket counts (the last one is +Inf only) and the sum in microseconds.
    public var snapshot: (buckets: [Int], sumMicros: Int) {
        counts.withLock { ($0.buckets, $0.sumMicros) }
    }
}
