// Leases on queue workers' processing lists, so that items held by a Herald that died (killed,
// not drained) or that could not reach Redis when its worker left go back to their queue.
// Every worker registers its processing list in the queue's sorted set
// `herald:consumers:{queue}` with its lease expiry (Unix ms) as the score, and renews it every
// third of `--queue-lease`. Whoever takes work from the queue (a worker, an HTTP pop) moves the
// items of expired lists back to the pop end, oldest out first, then forgets those lists, in
// one Lua script: reapers racing on one list neither lose nor copy items, nor reorder them.

/// One loop's lease keeping and reaping; confined to its loop.
public final class QueueLeases {
    private let redis: CommandSender
    /// How long a registration lasts without renewal, ms.
    public let leaseMs: Int64
    /// When each queue was last reaped by this loop (monotonic ms).
    private var lastReap: [String: Int64] = [:]

    public init(redis: CommandSender, leaseMs: Int64) {
        self.redis = redis
        self.leaseMs = leaseMs
    }

    /// The sorted set of a queue's processing lists; shares the queue's hash slot.
    public static func registry(of queue: String) -> String { "herald:consumers:{\(queue)}" }

    /// Registers `list` as held by a live worker of `queue` for one more lease period.
    public func renew(_ list: String, of queue: String) {
        redis.send(key: Array(queue.utf8), .command("ZADD", Self.registry(of: queue), String(Clock.wallMs() + leaseMs), list)) { _ in }
    }

    /// Moves every item of `list` back to `queue` and unregisters the list, in one atomic step
    /// (a Lua script: a consumer popping meanwhile cannot take a newer item before an older one
    /// is back). The newest goes back first, so the oldest is at the pop end, taken first again.
    /// With `expiredBy`, only a list whose lease ended by then (Unix ms) is touched: its owner
    /// may have renewed it since the reaper looked.
    public func putBack(_ list: String, of queue: String, expiredBy: Int64? = nil) {
        let arguments: [[UInt8]] = .command("EVAL", Self.putBackScript, "3", list, queue, Self.registry(of: queue),
                                            expiredBy.map(String.init) ?? "any")
        redis.send(key: Array(queue.utf8), arguments) { _ in }  // on failure the lease runs out: a later reap
    }

    private static let putBackScript = """
        if ARGV[1] ~= 'any' then
          local lease = redis.call('ZSCORE', KEYS[3], KEYS[1])
          if lease and tonumber(lease) > tonumber(ARGV[1]) then return -1 end
        end
        local moved = 0
        while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
        redis.call('ZREM', KEYS[3], KEYS[1])
        return moved
        """

    /// Puts back the items of `queue`'s expired processing lists; at most once per third of a
    /// lease per queue and loop, whoever asks.
    public func reapIfDue(_ queue: String) {
        let now = Clock.nowMs()
        if let last = lastReap[queue], now - last < leaseMs / 3 { return }
        if lastReap.count >= 10_000 { lastReap = lastReap.filter { now - $0.value < leaseMs } }
        lastReap[queue] = now
        let wallNow = Clock.wallMs()
        let expired: [[UInt8]] = .command("ZRANGEBYSCORE", Self.registry(of: queue), "-inf", String(wallNow), "LIMIT", "0", "100")
        redis.send(key: Array(queue.utf8), expired) { reply in
            guard case .array(let lists) = reply else { return }
            for list in lists.compactMap(\.text) { self.putBack(list, of: queue, expiredBy: wallNow) }
        }
    }
}
