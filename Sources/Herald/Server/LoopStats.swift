// Counters and link states one loop publishes for the rest of the process (/metrics, /readyz).
// Written only by the owning loop, read by any: atomics, no locks.
import Synchronization

/// One loop's figures, readable from any thread.
public final class LoopStats: Sendable {
    /// 1 while the loop's command link to Redis is ready.
    public let commandLinkUp = Atomic<Int>(0)
    /// 1 while the loop's subscriber link to Redis is ready.
    public let subscriberLinkUp = Atomic<Int>(0)
    public let httpConnections = Atomic<Int>(0)
    public let webSocketConnections = Atomic<Int>(0)
    public let eventStreams = Atomic<Int>(0)
    public let requests = Atomic<Int>(0)
    public let published = Atomic<Int>(0)
    public let publishErrors = Atomic<Int>(0)
    public let received = Atomic<Int>(0)
    public let delivered = Atomic<Int>(0)
    public let dropped = Atomic<Int>(0)
    public let channels = Atomic<Int>(0)
    public let patterns = Atomic<Int>(0)
    public let shards = Atomic<Int>(0)
    public let redisReconnects = Atomic<Int>(0)

    public init() {}
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
