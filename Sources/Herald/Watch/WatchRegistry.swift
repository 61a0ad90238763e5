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
    private let limits: WatchLimits
    /// The subscriber links, made on the first watch.
    private let links: KeyspaceLinks
    private var linksStarted = false
    private var targets: [WatchTarget: Target] = [:]
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
    /// Whether every node's `notify-keyspace-events` was found sufficient since the links were
    /// last lost (a restarted Redis may have lost a setting made with CONFIG SET).
    private var eventsChecked = false
    /// Ops waiting for a check under way.
    private var eventsWaiters: [(HTTPError?) -> Void] = []
    private var checking = false
    /// Reads at most per tick: a burst of changes to many keys is spread over ticks.
    static let readsPerTick = 1000
    /// SCAN calls one pattern's snapshot may make (COUNT 1000 each): about a million keys
    /// looked at; a larger key space needs a pattern with a literal part.
    static let scanBudget = 1000

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

    /// The links, for the loop's readiness, reconnect counts and a Sentinel relocation.
    var subscriberLinks: [RedisConnection] { links.all }

    func stop() { links.stop() }

    // MARK: Watching

    /// Watches `keys` and `patterns` for `watcher`: checks the keyspace notifications,
    /// subscribes, snapshots the patterns (SCAN, within `--max-watch-keys`), then reads every key
    /// and sends each value. `done` runs after the last snapshot value was queued, or with the
    /// error that stopped the watch (nothing is then held for it).
    func watch(_ watcher: Watcher, keys: [RedisName], patterns: [RedisName], done: @escaping (HTTPError?) -> Void) {
        loop.assertConfined()
        ensureEvents { [self] error in
            if let error { return done(error) }
            let wanted = keys.map { WatchTarget.key($0.bytes) } + patterns.map { WatchTarget.pattern($0.bytes) }
            hold(wanted)
            whenConfirmed(wanted[...]) { [self] in
                scanAll(patterns.map(\.bytes)[...], found: []) { [self] result in
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
            guard var state = targets[target] else { continue }
            state.members[id] = nil
            targets[target] = state
            if state.members.isEmpty && state.holds == 0 { emptied.append(target) }
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
        for ticket in schedule.forget(id) { tickets[ticket] = nil }
    }

    /// `watcher`'s queue drained: the keys whose values did not fit are read again for it.
    func drained(_ watcher: Watcher) {
        guard let keys = behind.removeValue(forKey: ObjectIdentifier(watcher)) else { return }
        for key in keys { schedule.add(key, ReadAudience(catchUps: [ObjectIdentifier(watcher)])) }
        flushSoon()
    }

    private func hold(_ wanted: [WatchTarget]) {
        var fresh: [WatchTarget] = []
        for target in wanted {
            if targets[target] == nil { fresh.append(target) }
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
            guard var state = targets[target] else { continue }
            state.holds -= 1
            targets[target] = state
            if state.members.isEmpty && state.holds == 0 { emptied.append(target) }
        }
        drop(emptied)
    }

    private func join(_ watcher: Watcher, _ wanted: [WatchTarget]) {
        watchers[ObjectIdentifier(watcher)] = watcher
        for target in wanted { targets[target]?.members[ObjectIdentifier(watcher)] = watcher }
    }

    private func drop(_ emptied: [WatchTarget]) {
        guard !emptied.isEmpty else { return }
        for target in emptied { targets[target] = nil }
        links.remove(emptied)
        countTargets()
    }

    private func countTargets() {
        var keys = 0
        for target in targets.keys { if case .key = target { keys += 1 } }
        stats.watchKeys.set(keys)
        stats.watchPatterns.set(targets.count - keys)
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
        if event == Array("expire".utf8) { return }
        schedule.changed(key, via: target, expired: event == Array("expired".utf8))
        flushSoon()
    }

    private func confirmed(_ target: WatchTarget) {
        guard var state = targets[target] else { return }
        let waiters = state.waiters
        let resync = state.lost && !state.members.isEmpty
        state.waiters = []
        state.lost = false
        targets[target] = state
        for waiter in waiters { waiter() }
        guard resync else { return }
        // Changes made while the link was down were not heard: every watcher gets fresh values.
        switch target {
        case .key(let key):
            schedule.add(key, ReadAudience(snapshots: state.members.mapValues { _ in [] }))
            flushSoon()
        case .pattern(let pattern):
            for member in state.members.values { member.patternLost(pattern) }
            scan(pattern, found: [], capped: true) { [self] result in
                guard case .success(let keys) = result else { return }
                for member in state.members.values where member.isWatching {
                    snapshot(keys, for: member) { member.patternResynced(pattern) }
                }
            }
        }
    }

    private func lost(_ lost: [WatchTarget]) {
        eventsChecked = false
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
        for key in schedule.take(limit: min(room, Self.readsPerTick)) { read(key) }
        if schedule.hasReadable { retryLater(afterMs: room == 0 ? 10 : 1) }
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
        if schedule.waiting[key] != nil { flushSoon() }
    }

    /// Sends one read's result: snapshots to the watchers that asked for one, the change to
    /// every other watcher of the targets it came through, each once, each message encoded once.
    private func deliver(_ key: [UInt8], _ audience: ReadAudience, message: (Bool) -> [UInt8]) {
        var sent: Set<ObjectIdentifier> = []
        var snapshotMessage: [UInt8]?
        var changeMessage: [UInt8]?
        let members = audience.targets.compactMap { targets[$0]?.members }
        for (id, held) in audience.snapshots {
            sent.insert(id)
            if let w = watchers[id] {
                if snapshotMessage == nil { snapshotMessage = message(true) }
                put(snapshotMessage!, key: key, to: w, id: id)
            }
            for ticket in held { finish(ticket) }
        }
        for group in members {
            for (id, w) in group where !sent.contains(id) && !schedule.awaitsLaterRead(id, of: key) {
                sent.insert(id)
                if changeMessage == nil { changeMessage = message(false) }
                put(changeMessage!, key: key, to: w, id: id)
            }
        }
        for id in audience.catchUps where !sent.contains(id) {
            guard let w = watchers[id] else { continue }
            if changeMessage == nil { changeMessage = message(false) }
            put(changeMessage!, key: key, to: w, id: id)
        }
    }

    private func put(_ message: [UInt8], key: [UInt8], to watcher: Watcher, id: ObjectIdentifier) {
        if watcher.hasRoom(for: message.count + 16) {
            watcher.send(message)
        } else {
            behind[id, default: []].insert(key)
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

    // MARK: Keyspace notifications setting

    /// Checks (once per link period) that every node sends the notifications watches need;
    /// with `--keyspace-events`, turns on what is missing.
    private func ensureEvents(_ done: @escaping (HTTPError?) -> Void) {
        if eventsChecked { return done(nil) }
        eventsWaiters.append(done)
        guard !checking else { return }
        checking = true
        let nodes: [String?] = cluster.map { $0.map?.nodes ?? [] } ?? [nil]
        guard !nodes.isEmpty else { return eventsDone(.redisUnavailable("the cluster's masters are not known yet")) }
        var left = nodes.count
        var failure: HTTPError?
        for node in nodes {
            checkEvents(on: node) { [self] error in
                failure = failure ?? error
                left -= 1
                if left == 0 { eventsDone(failure) }
            }
        }
    }

    private func eventsDone(_ error: HTTPError?) {
        checking = false
        eventsChecked = error == nil
        let waiters = eventsWaiters
        eventsWaiters = []
        for waiter in waiters { waiter(error) }
    }

    private func send(_ node: String?, _ command: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) -> Bool {
        if let node, let cluster { return cluster.send(node: node, command, callback) }
        return redis.send(key: nil, command, callback)
    }

    private func checkEvents(on node: String?, _ done: @escaping (HTTPError?) -> Void) {
        let asked = send(node, .command("CONFIG", "GET", "notify-keyspace-events")) { [self] reply in
            if reply.linkLoss != nil { return done(.redisUnavailable("Redis did not answer CONFIG GET")) }
            guard case .array(let pair) = reply, pair.count == 2, let current = pair[1].text else {
                // CONFIG is refused on some managed Redis services: the setting cannot be
                // checked, so it is trusted (their console sets it).
                logger.warning(
                    "cannot read notify-keyspace-events; watches assume it is set",
                    metadata: ["reply": "\(reply.errorMessage ?? "unexpected")", "node": "\(node ?? "main")"])
                return done(nil)
            }
            guard !KeyspaceSetting.missing(from: current).isEmpty else { return done(nil) }
            guard limits.setEvents else { return done(.watchUnavailable(KeyspaceSetting.unavailableMessage(current, node: node))) }
            let merged = KeyspaceSetting.merged(current)
            let set = send(node, .command("CONFIG", "SET", "notify-keyspace-events", merged)) { [self] reply in
                if let error = reply.errorMessage ?? reply.linkLoss?.reason {
                    return done(.watchUnavailable("\(KeyspaceSetting.unavailableMessage(current, node: node)); CONFIG SET failed: \(error)"))
                }
                logger.notice("turned on keyspace notifications", metadata: ["notify-keyspace-events": "\(merged)", "node": "\(node ?? "main")"])
                done(nil)
            }
            if !set { done(.redisUnavailable("the link to Redis is down")) }
        }
        if !asked { done(.redisUnavailable("the link to Redis is down")) }
    }

    // MARK: Pattern snapshots

    /// The keys each pattern matches now, together; `watch_too_broad` when one matches more
    /// than `--max-watch-keys`.
    private func scanAll(_ patterns: ArraySlice<[UInt8]>, found: Set<[UInt8]>, _ done: @escaping (Result<Set<[UInt8]>, HTTPError>) -> Void) {
        guard let pattern = patterns.first else { return done(.success(found)) }
        scan(pattern, found: []) { [self] result in
            switch result {
            case .failure(let error): done(.failure(error))
            case .success(let keys): scanAll(patterns.dropFirst(), found: found.union(keys), done)
            }
        }
    }

    /// SCAN MATCH `pattern` on every master (or the one Redis), within the budget.
    /// `capped`: a resync after a lost link keeps the first `--max-watch-keys` keys rather than
    /// failing a watch that was accepted.
    private func scan(
        _ pattern: [UInt8], found: Set<[UInt8]>, capped: Bool = false, _ done: @escaping (Result<Set<[UInt8]>, HTTPError>) -> Void
    ) {
        let nodes: [String?] = cluster.map { $0.map?.nodes ?? [] } ?? [nil]
        var found = found
        var calls = 0
        func step(_ nodeIndex: Int, _ cursor: [UInt8]) {
            guard nodeIndex < nodes.count else { return done(.success(found)) }
            calls += 1
            guard calls <= Self.scanBudget else {
                return done(.failure(.watchTooBroad("the pattern's SCAN did not end within \(Self.scanBudget) steps: give it a longer literal part")))
            }
            let asked = send(nodes[nodeIndex], [Array("SCAN".utf8), cursor, Array("MATCH".utf8), pattern, Array("COUNT".utf8), Array("1000".utf8)]) {
                [self] reply in
                guard case .array(let parts) = reply, parts.count == 2, let next = parts[0].bytes, case .array(let keys) = parts[1] else {
                    return done(.failure(.redisUnavailable("SCAN failed: \(reply.errorMessage ?? reply.linkLoss?.reason ?? "unexpected reply")")))
                }
                for case .string(let key) in keys where !InternalKeys.isReserved(RedisName(bytes: key)) && UTF8Validation.isValid(key) {
                    if capped && found.count >= limits.maxKeys { return done(.success(found)) }
                    found.insert(key)
                }
                if found.count > limits.maxKeys {
                    return done(
                        .failure(.watchTooBroad("'\(String(decoding: pattern, as: UTF8.self))' matches more than \(limits.maxKeys) keys (--max-watch-keys)")))
                }
                if next == Array("0".utf8) { step(nodeIndex + 1, Array("0".utf8)) } else { step(nodeIndex, next) }
            }
            if !asked { done(.failure(.redisUnavailable("the link to Redis is down"))) }
        }
        step(0, Array("0".utf8))
    }
}
