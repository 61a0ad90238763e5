// Who watches which keys on one event loop, like the Hub for channels: every key and pattern is
// subscribed at most once per loop (KeyspaceLinks), however many local clients watch it, and
// each read of a key (WatchScript, on the command link) goes to every local watcher of it.
// Changes are coalesced (ReadSchedule): one read per key per round trip at most, whatever the
// rate of writes. A watch subscribes first and reads after the subscription is confirmed, so
// no change falls between the snapshot and the first notification.
import Logging

/// The limits and switches watches run under (`--max-watch-keys`, `--max-watch-value`,
/// `--keyspace-events`, `--max-pending`).
struct WatchLimits {
    /// Keys one pattern may match at its snapshot (SCAN); beyond, `watch_too_broad`.
    var maxKeys = 1000
    /// Largest value sent, bytes; a larger one is told by its size only.
    var maxValue = 1 << 20
    /// Whether Herald may turn on the keyspace notifications it needs (CONFIG SET).
    var setEvents = false
    /// Commands of this loop waiting on Redis beyond which reads wait for the next tick.
    var maxPending = 10_000
}

/// A loop's watches; confined to its loop.
final class WatchRegistry {
    private struct Target {
        var members: [ObjectIdentifier: Watcher] = [:]
        /// Watch ops between their subscription and their snapshot (SCAN) hold the target.
        var holds = 0
        /// The link was lost while watchers held it: they get fresh values once it is back.
        var lost = false
        /// Run once the target is subscribed on every link.
        var waiters: [() -> Void] = []
    }

    private let loop: EventLoop
    private let redis: CommandSender
    private let cluster: ClusterCommands?
    private let stats: LoopStats
    private let logger: Logger
    /// Lost patterns whose SCAN is under way (or waits to be tried again).
    private var rescanning: Set<[UInt8]> = []
    private let limits: WatchLimits
    /// The notifications check and pattern SCANs.
    private let commands: WatchCommands
    /// The subscriber links, made on the first watch.
    private let links: KeyspaceLinks
    private var linksStarted = false
    private var targets: [WatchTarget: Target] = [:]
    /// How many of `targets` are keys (the rest are patterns), for the gauges.
    private var keyTargets = 0
    /// Every watcher that holds a watch, by identity (snapshots and catch-ups name them so).
    private var watchers: [ObjectIdentifier: Watcher] = [:]
    private var schedule = ReadSchedule()
    private var flushQueued = false
    private var retryQueued = false
    /// Watch ops waiting for their snapshots: how many reads are left, and what runs after.
    private var tickets: [Int: (left: Int, done: () -> Void)] = [:]
    private var nextTicket = 0
    /// Keys a value of which did not fit a watcher's queue, read again when it drains.
    private var behind: [ObjectIdentifier: Set<[UInt8]>] = [:]
    /// Watchers that fell more than `maxBehind` keys behind: instead of remembering every key
    /// (a stalled client watching a busy pattern would make Herald hold each key changed),
    /// everything they watch is sent afresh once their queue drains.
    private var fellBehind: Set<ObjectIdentifier> = []
    /// Keys remembered for one slow watcher: ten times `--max-watch-keys`.
    private var maxBehind: Int { limits.maxKeys * 10 }
    /// Patterns whose changes came faster than the cap on waiting keys: resynced once it clears.
    private var overflowed: Set<WatchTarget> = []
    /// Keys that may wait for a read at once (about 100 bytes each, plus their audience).
    static let maxWaiting = 100_000
    private static let expireEvent = Array("expire".utf8)
    private static let expiredEvent = Array("expired".utf8)
    /// Reads at most per tick: a burst of changes to many keys is spread over ticks.
    static let readsPerTick = 1000

    init(
        loop: EventLoop, redis: CommandSender, cluster: ClusterCommands?, endpoint: RedisEndpoint, limits: WatchLimits,
        stats: LoopStats, logger: Logger
    ) {
        self.loop = loop
        self.redis = redis
        self.cluster = cluster
        self.limits = limits
        self.stats = stats
        self.logger = logger
        links = KeyspaceLinks(loop: loop, endpoint: endpoint, cluster: cluster, logger: logger)
        commands = WatchCommands(redis: redis, cluster: cluster, limits: limits, logger: logger)
        links.onConfirmed = { [unowned self] target in confirmed(target) }
        links.onLost = { [unowned self] lost in self.lost(lost) }
        links.onChange = { [unowned self] key, event, target in changed(key, event: event, via: target) }
        if let cluster {
            // After the Hub's: the Hub set its observer first (LoopContext builds it first).
            let previous = cluster.onTopologyChange
            cluster.onTopologyChange = { [weak self] in
                previous?()
                self?.links.topologyChanged()
            }
        }
    }

    /// Under Sentinel: each link follows the master.
    var prepare: ((RedisConnection) -> Void)? {
        get { links.prepare }
        set { links.prepare = newValue }
    }

    /// The links, for the loop's reconnect count.
    var subscriberLinks: [RedisConnection] { links.all }

    func stop() { links.stop() }

    // MARK: Watching

    /// Watches `keys` and `patterns` for `watcher`: checks the keyspace notifications,
    /// subscribes, snapshots the patterns (SCAN, within `--max-watch-keys`), then reads every key
    /// and sends each value. `done` runs after the last snapshot value was queued, or with the
    /// error that stopped the watch (nothing is then held for it).
    func watch(_ watcher: Watcher, keys: [RedisName], patterns: [RedisName], done: @escaping (HTTPError?) -> Void) {
        loop.assertConfined()
        commands.ensureEvents { [self] error in
            if let error { return done(error) }
            let wanted = keys.map { WatchTarget.key($0.bytes) } + patterns.map { WatchTarget.pattern($0.bytes) }
            hold(wanted)
            whenConfirmed(wanted[...]) { [self] in
                commands.scanAll(patterns.map(\.bytes)[...], found: []) { [self] result in
                    switch result {
                    case .failure(let error):
                        release(wanted)
                        done(error)
                    case .success(let matched):
                        guard watcher.isWatching else {
                            release(wanted)
                            return
                        }
                        join(watcher, wanted)
                        release(wanted)
                        snapshot(Set(keys.map(\.bytes)).union(matched), for: watcher) { done(nil) }
                    }
                }
            }
        }
    }

    /// Stops `watcher`'s watches of `keys` and `patterns`.
    func unwatch(_ watcher: Watcher, keys: [RedisName], patterns: [RedisName]) {
        let id = ObjectIdentifier(watcher)
        var emptied: [WatchTarget] = []
        for target in keys.map({ WatchTarget.key($0.bytes) }) + patterns.map({ WatchTarget.pattern($0.bytes) }) {
            // In place: a copy of the target would copy its members (10,000 watchers of one key
            // leaving would cost 10,000 squared).
            targets[target]?.members[id] = nil
            if let state = targets[target], state.members.isEmpty && state.holds == 0 { emptied.append(target) }
        }
        drop(emptied)
    }

    /// Whether `watcher` holds `target` (an op that failed may share a target with one that did not).
    func holds(_ watcher: Watcher, _ target: WatchTarget) -> Bool {
        targets[target]?.members[ObjectIdentifier(watcher)] != nil
    }

    /// `watcher` is gone: its watches end and what it waited for is forgotten.
    func leave(_ watcher: Watcher, keys: [RedisName], patterns: [RedisName]) {
        unwatch(watcher, keys: keys, patterns: patterns)
        let id = ObjectIdentifier(watcher)
        watchers[id] = nil
        behind[id] = nil
        fellBehind.remove(id)
        for ticket in schedule.forget(id) { tickets[ticket] = nil }
    }

    /// `watcher`'s queue drained: the keys whose values did not fit are read again for it.
    func drained(_ watcher: Watcher) {
        let id = ObjectIdentifier(watcher)
        if fellBehind.remove(id) != nil {
            resync(watcher)
            return
        }
        guard let keys = behind.removeValue(forKey: id) else { return }
        for key in keys { schedule.add(key, ReadAudience(catchUps: [id])) }
        flushSoon()
    }

    /// Fresh values of everything `watcher` watches, for it alone: its keys are read again;
    /// for each pattern it is told the gap, then the pattern's keys are found again and read.
    private func resync(_ watcher: Watcher) {
        let id = ObjectIdentifier(watcher)
        for (target, state) in targets where state.members[id] != nil {
            switch target {
            case .key(let key):
                schedule.add(key, ReadAudience(catchUps: [id]))
            case .pattern(let pattern):
                watcher.patternLost(pattern)
                commands.scan(pattern, found: [], capped: true) { [self] result in
                    guard case .success(let keys) = result, watcher.isWatching else { return }
                    snapshot(keys, for: watcher) { watcher.patternResynced(pattern) }
                }
            }
        }
        flushSoon()
    }

    private func hold(_ wanted: [WatchTarget]) {
        var fresh: [WatchTarget] = []
        for target in wanted {
            if targets[target] == nil {
                fresh.append(target)
                if case .key = target { keyTargets += 1 }
            }
            targets[target, default: Target()].holds += 1
        }
        if !linksStarted {
            linksStarted = true
            links.openLinks()
        }
        links.add(fresh)
        countTargets()
    }

    private func release(_ wanted: [WatchTarget]) {
        var emptied: [WatchTarget] = []
        for target in wanted {
            targets[target]?.holds -= 1
            if let state = targets[target], state.members.isEmpty && state.holds == 0 { emptied.append(target) }
        }
        drop(emptied)
    }

    private func join(_ watcher: Watcher, _ wanted: [WatchTarget]) {
        watchers[ObjectIdentifier(watcher)] = watcher
        for target in wanted { targets[target]?.members[ObjectIdentifier(watcher)] = watcher }
    }

    private func drop(_ emptied: [WatchTarget]) {
        guard !emptied.isEmpty else { return }
        for target in emptied where targets.removeValue(forKey: target) != nil {
            if case .key = target { keyTargets -= 1 }
        }
        links.remove(emptied)
        countTargets()
    }

    private func countTargets() {
        stats.watchKeys.set(keyTargets)
        stats.watchPatterns.set(targets.count - keyTargets)
    }

    /// Runs `then` once every target is subscribed on every link.
    private func whenConfirmed(_ wanted: ArraySlice<WatchTarget>, _ then: @escaping () -> Void) {
        guard let target = wanted.first else { return then() }
        let rest = wanted.dropFirst()
        if links.isConfirmed(target) { return whenConfirmed(rest, then) }
        targets[target]?.waiters.append { [unowned self] in whenConfirmed(rest, then) }
    }

    /// Reads each key for `watcher` as a snapshot; `done` runs after the last was queued.
    private func snapshot(_ keys: Set<[UInt8]>, for watcher: Watcher, done: @escaping () -> Void) {
        guard !keys.isEmpty else { return done() }
        let ticket = nextTicket
        nextTicket += 1
        tickets[ticket] = (keys.count, done)
        for key in keys { schedule.add(key, ReadAudience(snapshots: [ObjectIdentifier(watcher): [ticket]])) }
        flushSoon()
    }

    // MARK: Notifications and link changes

    private func changed(_ key: [UInt8], event: [UInt8], via target: WatchTarget) {
        stats.watchNotifications.bump()
        // A pattern may reach Herald's own keys and keys no client could name (not UTF-8): both
        // stay unseen.
        guard targets[target] != nil, !InternalKeys.isReserved(RedisName(bytes: key)), UTF8Validation.isValid(key) else { return }
        // A time to live set leaves the value as it was: nothing to read.
        if event == Self.expireEvent { return }
        // A pattern over keys written faster than they can be read would queue keys without
        // bound: past the cap it is read again as a whole once the backlog is down.
        if case .pattern = target, schedule.waiting.count >= Self.maxWaiting, schedule.waiting[key] == nil {
            overflowed.insert(target)
            return
        }
        schedule.changed(key, via: target, expired: event == Self.expiredEvent)
        flushSoon()
    }

    private func confirmed(_ target: WatchTarget) {
        guard let state = targets[target] else { return }
        let waiters = state.waiters
        let resync = state.lost && !state.members.isEmpty
        targets[target]?.waiters = []
        targets[target]?.lost = false
        for waiter in waiters { waiter() }
        // Changes made while the link was down were not heard: every watcher gets fresh values.
        if resync { self.resync(target) }
    }

    /// Fresh values of `target` for every watcher of it: a key is read again; a pattern's
    /// watchers are told the gap, then its keys are found again (SCAN) and read.
    private func resync(_ target: WatchTarget) {
        guard let state = targets[target] else { return }
        switch target {
        case .key(let key):
            schedule.add(key, ReadAudience(snapshots: state.members.mapValues { _ in [] }))
            flushSoon()
        case .pattern(let pattern):
            for member in state.members.values { member.patternLost(pattern) }
            rescan(pattern)
        }
    }

    /// Finds a lost pattern's keys again and reads them for its watchers, then tells them it is
    /// resynced. The subscriber link may be back before the command link the SCAN goes down:
    /// a SCAN that finds Redis unreachable is tried again (while anyone watches the pattern).
    private func rescan(_ pattern: [UInt8]) {
        guard rescanning.insert(pattern).inserted else { return }
        commands.scan(pattern, found: [], capped: true) { [self] result in
            rescanning.remove(pattern)
            guard let state = targets[.pattern(pattern)], !state.members.isEmpty else { return }
            switch result {
            case .success(let keys):
                for member in state.members.values where member.isWatching {
                    snapshot(keys, for: member) { member.patternResynced(pattern) }
                }
            case .failure(let error) where error.code == HTTPError.redisUnavailable("").code:
                rescanning.insert(pattern)
                loop.schedule(afterMs: 100) { [weak self] in
                    self?.rescanning.remove(pattern)
                    self?.rescan(pattern)
                }
            case .failure(let error):
                logger.warning(
                    "a lost pattern's keys could not be found again",
                    metadata: ["pattern": "\(String(decoding: pattern, as: UTF8.self))", "error": "\(error.message)"])
            }
        }
    }

    private func lost(_ lost: [WatchTarget]) {
        commands.eventsChecked = false
        for target in lost where targets[target] != nil {
            if !(targets[target]?.members.isEmpty ?? true) { targets[target]?.lost = true }
        }
    }

    /// Under Sentinel: the master moved; every link reconnects there.
    func relocate(_ reason: String) {
        for link in links.all { link.relocate(reason) }
    }

    // MARK: Reads

    private func flushSoon() {
        guard !flushQueued else { return }
        flushQueued = true
        loop.deferToEndOfTick { [unowned self] in
            flushQueued = false
            flush()
        }
    }

    private func flush() {
        let room = max(0, limits.maxPending - redis.pendingCount)
        let limit = min(room, Self.readsPerTick)
        let keys = schedule.take(limit: limit)
        for key in keys { read(key) }
        if !overflowed.isEmpty && schedule.waiting.count < Self.maxWaiting / 2 {
            let patterns = overflowed
            overflowed = []
            for target in patterns { resync(target) }
        }
        if keys.count == limit { retryLater(afterMs: room == 0 ? 10 : 1) }
    }

    private func retryLater(afterMs: Int64) {
        guard !retryQueued else { return }
        retryQueued = true
        loop.schedule(afterMs: afterMs) { [weak self] in
            self?.retryQueued = false
            self?.flushSoon()
        }
    }

    private func read(_ key: [UInt8]) {
        stats.watchReads.bump()
        let sent = redis.send(key: key, WatchScript.command(key: key, maxValue: limits.maxValue)) { [weak self] reply in
            self?.answered(key, reply)
        }
        if !sent {
            schedule.retry(key)
            retryLater(afterMs: 100)
        }
    }

    private func answered(_ key: [UInt8], _ reply: RedisReply) {
        if reply.linkLoss != nil {
            schedule.retry(key)
            retryLater(afterMs: 100)
            return
        }
        let audience = schedule.finished(key)
        if let value = WatchedValue(reply: reply) {
            deliver(key, audience) { snapshot in value.message(key: key, snapshot: snapshot, expired: audience.expired) }
        } else {
            let error = HTTPError.redisError("reading \(String(decoding: key, as: UTF8.self)): \(reply.errorMessage ?? "unexpected reply")")
            deliver(key, audience) { _ in Envelope.watchError(error, key: key) }
        }
        if schedule.waiting[key] != nil || !overflowed.isEmpty { flushSoon() }
    }

    /// Sends one read's result: snapshots to the watchers that asked for one, the change to
    /// every other watcher of the targets it came through, each once, each message encoded once.
    private func deliver(_ key: [UInt8], _ audience: ReadAudience, message: (Bool) -> [UInt8]) {
        var sent: Set<ObjectIdentifier> = []
        var snapshotMessage: SharedMessage?
        var changeMessage: SharedMessage?
        let members = audience.targets.compactMap { targets[$0]?.members }
        for (id, held) in audience.snapshots {
            sent.insert(id)
            if let w = watchers[id] {
                if snapshotMessage == nil { snapshotMessage = SharedMessage(message(true)) }
                put(snapshotMessage!, key: key, to: w, id: id)
            }
            for ticket in held { finish(ticket) }
        }
        for group in members {
            for (id, w) in group where !sent.contains(id) && !schedule.awaitsLaterRead(id, of: key) {
                sent.insert(id)
                if changeMessage == nil { changeMessage = SharedMessage(message(false)) }
                put(changeMessage!, key: key, to: w, id: id)
            }
        }
        for id in audience.catchUps where !sent.contains(id) {
            guard let w = watchers[id] else { continue }
            if changeMessage == nil { changeMessage = SharedMessage(message(false)) }
            put(changeMessage!, key: key, to: w, id: id)
        }
    }

    private func put(_ message: SharedMessage, key: [UInt8], to watcher: Watcher, id: ObjectIdentifier) {
        // The frame or event adds a few bytes of its own (at most 14, or `data: ` and two line
        // ends per line of JSON, which has none).
        if watcher.hasRoom(for: message.json.count + 16) {
            watcher.send(message)
        } else if !fellBehind.contains(id) {
            behind[id, default: []].insert(key)
            if behind[id]!.count > maxBehind {
                behind[id] = nil
                fellBehind.insert(id)
            }
        }
    }

    private func finish(_ ticket: Int) {
        guard var held = tickets[ticket] else { return }
        held.left -= 1
        if held.left > 0 {
            tickets[ticket] = held
        } else {
            tickets[ticket] = nil
            held.done()
        }
    }
}
