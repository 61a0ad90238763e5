// Leases on queue workers' processing lists, so that items held by a Herald that died (killed,
// not drained) or that could not reach Redis when its worker left go back to their queue.
// Every worker registers its processing list in the queue's sorted set
// `herald:consumers:{queue}` with its lease end as the score, and renews it every third of
// `--queue-lease`. Whoever takes work from the queue (a worker, an HTTP pop) puts back the items
// of lists whose lease ended, then forgets those lists. Each step is one Lua script that reads
// Redis's own clock (no skew between hosts) and runs atomically (reapers racing on one list
// neither lose, copy nor reorder items; a lease renewed a moment ago is never reaped).
// After this loop's link to Redis comes back, it renews its own lists at once and reaps nothing
// for one lease period, so the lists of Heralds still reconnecting after the same outage are
// not taken for dead.
// A script Redis refuses (a key of Herald's turned into another type behind its back) is
// counted (`herald_queue_lease_errors_total`), logged at most every 10 s, and tried again: a
// renewal at the next period, a reap the next time one is due, a put-back every second until it
// works or the list's lease has run out (from then on reapers take over).
import Logging

/// One loop's lease keeping and reaping; confined to its loop.
public final class QueueLeases {
    private let redis: CommandSender
    private let loop: EventLoop
    private let logger: Logger
    /// How long a registration lasts without renewal, ms.
    public let leaseMs: Int64
    /// When each queue was last reaped by this loop (monotonic ms).
    private var lastReap: [RedisName: Int64] = [:]
    /// This loop's live processing lists and their queues (re-registered after a reconnect).
    private var live: [RedisName: RedisName] = [:]
    /// `redis.reconnects` when last looked at; a change means the link came back.
    private var reconnectsSeen = 0
    /// No reaping before this (monotonic ms): a lease period after the link came back.
    private var quietUntil: Int64 = 0
    /// Scripts Redis answered with an error, for metrics.
    public private(set) var scriptErrors = 0
    /// Monotonic ms of the last logged failure, and failures since then not logged.
    private var loggedMs: Int64?
    private var unlogged = 0

    public init(redis: CommandSender, loop: EventLoop, leaseMs: Int64, logger: Logger) {
        self.redis = redis
        self.loop = loop
        self.leaseMs = leaseMs
        self.logger = logger
    }

    /// The sorted set of a queue's processing lists; shares the queue's hash slot.
    static func registry(of queue: RedisName) -> RedisName { QueueKeys.registry(queue) }

    /// Registers `list` as held by a live worker of `queue` for one more lease period.
    public func renew(_ list: RedisName, of queue: RedisName) {
        live[list] = queue
        noticeReconnect()
        send(queue, .command("EVAL", Self.renewScript, "1", Self.registry(of: queue), list, String(leaseMs)), script: "renew")
    }

    /// The worker of `list` is gone: this loop no longer renews it.
    public func forget(_ list: RedisName) {
        live[list] = nil
    }

    /// Moves every item of `list` back to `queue` in one atomic step (a consumer popping
    /// meanwhile cannot take a newer item before an older one is back): the newest goes back
    /// first, so the oldest is at the pop end, taken first again. With `unregister`, the list
    /// also leaves the registry (its worker is done with it); without, its lease runs out.
    public func putBack(_ list: RedisName, of queue: RedisName, unregister: Bool = true) {
        if unregister { forget(list) }
        putBack(list, of: queue, unregister: unregister, until: Clock.nowMs() + leaseMs)
    }

    /// One put-back attempt; a failed one is tried again every second until `deadline` (by
    /// then the list's lease has run out and any reaper puts its items back).
    private func putBack(_ list: RedisName, of queue: RedisName, unregister: Bool, until deadline: Int64) {
        let arguments: [[UInt8]] = .command("EVAL", Self.putBackScript, "3", list, queue, Self.registry(of: queue), unregister ? "1" : "0")
        let retry = {
            guard Clock.nowMs() < deadline else { return }
            self.loop.schedule(afterMs: min(1000, max(100, self.leaseMs / 3))) {
                self.putBack(list, of: queue, unregister: unregister, until: deadline)
            }
        }
        let sent = redis.send(key: queue.bytes, arguments) { reply in
            if self.failed(reply, script: "put back", queue: queue) { retry() }
        }
        if !sent { retry() }
    }

    /// Puts back the items of `queue`'s lists whose lease ended; at most once per third of a
    /// lease per queue and loop, whoever asks, and not in the quiet period after a reconnect.
    public func reapIfDue(_ queue: RedisName) {
        noticeReconnect()
        let now = Clock.nowMs()
        guard now >= quietUntil, redis.isReady else { return }
        if let last = lastReap[queue], now - last < leaseMs / 3 { return }
        if lastReap.count >= 10_000 { lastReap = lastReap.filter { now - $0.value < leaseMs } }
        lastReap[queue] = now
        send(queue, .command("EVAL", Self.reapScript, "2", Self.registry(of: queue), queue), script: "reap")
    }

    /// A reconnect since the last look: renew every live list now, reap nothing for a lease.
    private func noticeReconnect() {
        guard redis.reconnects != reconnectsSeen, redis.isReady else { return }
        reconnectsSeen = redis.reconnects
        quietUntil = Clock.nowMs() + leaseMs
        for (list, queue) in live {
            send(queue, .command("EVAL", Self.renewScript, "1", Self.registry(of: queue), list, String(leaseMs)), script: "renew")
        }
    }

    /// Sends a renewal or a reap; a failed one is counted and logged, and runs again when next
    /// due (an unrenewed lease runs out, and a later reap puts things back).
    private func send(_ queue: RedisName, _ arguments: [[UInt8]], script: String) {
        redis.send(key: queue.bytes, arguments) { reply in
            _ = self.failed(reply, script: script, queue: queue)
        }
    }

    /// Whether `reply` says the script did not (or may not have) run. Redis's refusals are
    /// counted and logged, the first at once, then at most one line per 10 s with the number
    /// not logged; a link lost before the answer is Redis's link's own news.
    private func failed(_ reply: RedisReply, script: String, queue: RedisName) -> Bool {
        let message: String
        switch reply {
        case .linkLost: return true
        case .error(let text): message = text
        default: return false
        }
        scriptErrors += 1
        let now = Clock.nowMs()
        if let logged = loggedMs, now - logged < 10_000 {
            unlogged += 1
            return true
        }
        logger.error(
            "queue lease script failed; it will be tried again",
            metadata: [
                "script": "\(script)", "queue": "\(queue)", "error": "\(message)", "failuresNotLogged": "\(unlogged)",
            ])
        loggedMs = now
        unlogged = 0
        return true
    }

    /// Redis's clock in ms (TIME inside a script is replicated by effect since Redis 5).
    private static let redisNow = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

    /// KEYS: registry. ARGV: list, lease ms.
    private static let renewScript = redisNow + "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"

    /// KEYS: list, queue, registry. ARGV: "1" to unregister.
    private static let putBackScript = """
        local moved = 0
        while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
        if ARGV[1] == '1' then redis.call('ZREM', KEYS[3], KEYS[1]) end
        return moved
        """

    /// KEYS: registry, queue. The processing lists named in the registry share the queue's hash
    /// slot. Lists are taken in lease order; each is emptied back into the queue, then dropped.
    private static let reapScript =
        redisNow + """
            local moved = 0
            for _, list in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 100)) do
              while redis.call('LMOVE', list, KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
              redis.call('ZREM', KEYS[1], list)
            end
            return moved
            """
}
