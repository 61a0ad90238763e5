// Where one loop's master is, under Redis Sentinel. The locator asks the sentinels, one at a
// time and each within a deadline, for the master's address (`SENTINEL get-master-addr-by-name`),
// checks with ROLE that the node named is a master, and hands that address to every link of
// its loop when they (re)connect. It re-asks when a sentinel announces `+switch-master` (it
// stays subscribed on one sentinel, moving to the next when that one fails or falls silent),
// when a link to the master fails or finds it is no master (a READONLY reply, a refused ROLE
// check), and every half minute; and when the answer changes, it tells its loop to move every
// link. Shared nothing: one per loop, confined to it, with its own sentinel connections.
import Logging

/// Why a link has no address to connect to (yet).
public struct RedisAddressUnavailable: Error, Sendable {
    public let reason: String
    public init(reason: String) { self.reason = reason }
}

/// One loop's finder of the master through its sentinels; every method runs on the loop.
public final class SentinelLocator {
    /// How long one sentinel has to answer (connect, log in, reply), and then the master it
    /// names has to pass its ROLE check, ms.
    public static let answerDeadlineMs: Int64 = 1000
    /// Re-asking after a failed round waits 200 ms, doubling to at most this, ms.
    static let maxRetryMs: Int64 = 2000
    /// The sentinels are asked again this often even when nothing happened, ms.
    static let recheckMs: Int64 = 30_000
    /// The watched sentinel is pinged this often, and dropped when a ping goes unanswered for
    /// `answerDeadlineMs` more, ms.
    static let watchPingMs: Int64 = 5000

    private let loop: EventLoop
    private let target: SentinelTarget
    private let sentinels: [RedisEndpoint]
    private let logger: Logger
    /// For the short-lived sentinel and check links, whose ups and downs the locator reports.
    private let quietLogger: Logger

    /// The master, checked with ROLE; nil while none is known.
    public private(set) var master: RedisEndpoint?
    /// What the locator is doing or last failed at, for `/readyz`.
    public private(set) var status = "resolving master via sentinel"
    /// Told each time a (new) master is found: every link should move there.
    public var onMasterChange: ((RedisEndpoint) -> Void)?

    private var resolving = false
    private var resolveQueued = false
    private var retryTimer: Int?
    private var retries = 0
    /// The link of the current step: asking a sentinel, or checking the master it named.
    private var query: RedisConnection?
    private var queryDeadline: Int?
    /// The sentinel asked first: the last one that answered.
    private var firstSentinel = 0
    private var lastResolvedAt: Int64 = 0
    /// The last failure logged, so a long outage logs each new reason once.
    private var loggedFailure = ""
    /// The subscription to `+switch-master`, on one sentinel at a time.
    private let watcher: RedisConnection
    private var watchNext = 0
    private var watchConfirmed = false
    private var watchPingSentAt: Int64?
    private var watchPingDueAt: Int64 = 0
    private var stopped = false

    public init(loop: EventLoop, target: SentinelTarget, sentinelPassword: String?, logger: Logger) {
        self.loop = loop
        self.target = target
        self.sentinels = target.sentinelEndpoints(password: sentinelPassword)
        self.logger = logger
        var quiet = logger
        quiet.logLevel = .error
        self.quietLogger = quiet
        watcher = RedisConnection(loop: loop, endpoint: sentinels[0], mode: .pushes, logger: quiet)
        watcher.addressProvider = { [unowned self] in
            let sentinel = self.sentinels[self.watchNext % self.sentinels.count]
            self.watchNext += 1
            return .success(sentinel)
        }
        watcher.onReady = { [unowned self] in
            self.watchConfirmed = false
            self.watchPingSentAt = Clock.nowMs()
            self.watcher.send(.command("SUBSCRIBE", "+switch-master"))
            // A switch may have happened while no sentinel was watched.
            if self.master != nil { self.resolve() }
        }
        watcher.onPush = { [unowned self] reply in self.watched(reply) }
        watcher.onDown = { [unowned self] _ in self.watchPingSentAt = nil }
    }

    /// Starts watching and asking.
    public func start() {
        watcher.connect()
        resolve()
    }

    public func stop() {
        stopped = true
        watcher.stop()
        endQuery()
        if let timer = retryTimer { loop.cancelTimer(timer) }
        retryTimer = nil
    }

    /// The address a link should connect to now, or why there is none (and a round of asking
    /// is on its way).
    public func address() -> Result<RedisEndpoint, RedisAddressUnavailable> {
        if let master { return .success(master) }
        if !resolving && retryTimer == nil { resolve() }
        return .failure(RedisAddressUnavailable(reason: status))
    }

    /// Makes `link` one of the master's: it connects where the locator says, checks ROLE at
    /// login, and its failures and READONLY replies make the locator ask again. Call after the
    /// link's owner has set its `onDown`.
    public func follow(_ link: RedisConnection) {
        link.addressProvider = { [unowned self] in self.address() }
        link.requiresMaster = true
        link.onNotMaster = { [unowned self] reason in self.suspect(reason) }
        let ownersOnDown = link.onDown
        link.onDown = { [unowned self, unowned link] reason in
            ownersOnDown?(reason)
            if let master = self.master, link.endpoint == master { self.resolve() }
        }
    }

    /// The master proved not to be one: forget it and ask again.
    private func suspect(_ reason: String) {
        guard master != nil else { return }
        logger.warning("redis master is no longer a master; asking the sentinels", metadata: ["reason": "\(reason)"])
        resolve()
    }

    /// Asks the sentinels again (once at a time; a call while asking is a no-op). The round
    /// starts at the end of this tick, never inside the caller.
    public func resolve() {
        guard !stopped, !resolving, !resolveQueued else { return }
        if let timer = retryTimer { loop.cancelTimer(timer) }
        retryTimer = nil
        resolveQueued = true
        loop.deferToEndOfTick {
            self.resolveQueued = false
            guard !self.stopped, !self.resolving else { return }
            self.resolving = true
            if self.master == nil { self.status = "resolving master via sentinel" }
            self.ask(self.firstSentinel, tried: 0, errors: [])
        }
    }

    /// Asks sentinel `index` (modulo their count); on no answer, the next, until each was tried.
    private func ask(_ index: Int, tried: Int, errors: [String]) {
        guard tried < sentinels.count else {
            finish(.failure(RedisAddressUnavailable(reason: "no sentinel answered (" + errors.joined(separator: "; ") + ")")), masterUnknown: false)
            return
        }
        let sentinel = sentinels[index % sentinels.count]
        var done = false
        let next: (String) -> Void = { [unowned self] why in
            guard !done else { return }
            done = true
            self.endQuery()
            self.ask(index + 1, tried: tried + 1, errors: errors + ["\(sentinel): \(why)"])
        }
        let link = RedisConnection(loop: loop, endpoint: sentinel, mode: .commands, logger: quietLogger)
        let name = target.masterName
        link.onDown = { reason in next(reason) }
        link.onReady = { [unowned self, unowned link] in
            link.send(.command("SENTINEL", "get-master-addr-by-name", name)) { reply in
                guard !done else { return }
                if case .array(let parts) = reply, parts.count == 2, let host = parts[0].text, let port = parts[1].text.flatMap({ Int($0) }) {
                    done = true
                    self.endQuery()
                    self.firstSentinel = index % self.sentinels.count
                    self.check(self.target.master(host: host, port: port), namedBy: sentinel)
                } else if case .error(let message) = reply {
                    next(message)
                } else if case .linkLost(let loss) = reply {
                    next(loss.reason)
                } else {
                    next("knows no master named \(name)")
                }
            }
        }
        start(link, deadline: { next("no answer within \(Self.answerDeadlineMs) ms") })
    }

    /// Connects to the master a sentinel named and checks its ROLE before anyone uses it.
    private func check(_ candidate: RedisEndpoint, namedBy sentinel: RedisEndpoint) {
        var done = false
        let refused: (String) -> Void = { [unowned self] why in
            guard !done else { return }
            done = true
            self.endQuery()
            self.finish(.failure(RedisAddressUnavailable(reason: "sentinel \(sentinel) names \(candidate) as the master, but: \(why)")), masterUnknown: true)
        }
        let link = RedisConnection(loop: loop, endpoint: candidate, mode: .commands, logger: quietLogger)
        link.requiresMaster = true
        link.onDown = { reason in refused(reason) }
        link.onReady = { [unowned self] in
            guard !done else { return }
            done = true
            self.endQuery()
            self.finish(.success(candidate), masterUnknown: false)
        }
        start(link, deadline: { refused("no answer within \(Self.answerDeadlineMs) ms") })
    }

    private func start(_ link: RedisConnection, deadline: @escaping () -> Void) {
        query = link
        queryDeadline = loop.schedule(afterMs: Self.answerDeadlineMs) { [unowned self] in
            self.queryDeadline = nil
            deadline()
        }
        link.connect()
    }

    /// Closes the current step's link (it never reconnects) and cancels its deadline.
    private func endQuery() {
        if let timer = queryDeadline { loop.cancelTimer(timer) }
        queryDeadline = nil
        guard let link = query else { return }
        query = nil
        link.stop()
        // Its callbacks hold the link itself: let them go once they have returned.
        loop.deferToEndOfTick {
            link.onReady = nil
            link.onDown = nil
        }
    }

    /// Ends a round. `masterUnknown`: a sentinel answered, and its answer did not check out,
    /// so the master known so far is not to be used either.
    private func finish(_ result: Result<RedisEndpoint, RedisAddressUnavailable>, masterUnknown: Bool) {
        resolving = false
        lastResolvedAt = Clock.nowMs()
        switch result {
        case .success(let found):
            retries = 0
            loggedFailure = ""
            status = "master \(found) (via sentinel)"
            let moved = master != found
            master = found
            if moved {
                logger.notice("redis master found via sentinel", metadata: ["master": "\(found)", "name": "\(target.masterName)"])
                onMasterChange?(found)
            }
        case .failure(let unavailable):
            if masterUnknown { master = nil }
            status = "resolving master via sentinel: " + unavailable.reason
            if unavailable.reason != loggedFailure {
                loggedFailure = unavailable.reason
                logger.warning("no redis master via sentinel", metadata: ["reason": "\(unavailable.reason)"])
            }
            // With a master still in use, its links' failures bring the next round.
            guard master == nil, !stopped else { return }
            let delay = min(Self.maxRetryMs, 200 << min(retries, 4))
            retries += 1
            retryTimer = loop.schedule(afterMs: delay) { [unowned self] in
                self.retryTimer = nil
                self.resolve()
            }
        }
    }

    /// A push from the watched sentinel.
    private func watched(_ reply: RedisReply) {
        guard case .array(let parts) = reply, let kind = parts.first?.text else { return }
        switch kind {
        case "subscribe":
            watchConfirmed = true
            watchPingSentAt = nil
            watchPingDueAt = Clock.nowMs() + Self.watchPingMs
        case "pong":
            watchPingSentAt = nil
            watchPingDueAt = Clock.nowMs() + Self.watchPingMs
        case "message" where parts.count == 3 && parts[1].text == "+switch-master":
            // `<name> <old-ip> <old-port> <new-ip> <new-port>`: the round checks the new one.
            let words = (parts[2].text ?? "").split(separator: " ")
            guard words.first.map(String.init) == target.masterName else { return }
            logger.notice("sentinel announced a new master", metadata: ["name": "\(target.masterName)", "switch": "\(parts[2].text ?? "")"])
            resolve()
        default:
            return
        }
    }

    /// From the loop's housekeeping: a silent watched sentinel is left for the next one, and
    /// the sentinels are asked again now and then.
    public func checkTimeouts(now: Int64) {
        if watcher.isReady {
            if let sent = watchPingSentAt {
                if now - sent > Self.answerDeadlineMs {
                    watchPingSentAt = nil
                    let why = watchConfirmed ? "no answer to PING" : "no answer to SUBSCRIBE"
                    watcher.restart("sentinel \(watcher.endpoint) went silent: \(why) within \(Self.answerDeadlineMs) ms")
                }
            } else if now >= watchPingDueAt {
                watchPingSentAt = now
                watcher.send(.command("PING"))
            }
        }
        if !resolving, master != nil, now - lastResolvedAt > Self.recheckMs { resolve() }
    }
}
