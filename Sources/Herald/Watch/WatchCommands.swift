// The commands behind watches other than value reads: the check that every node sends the
// keyspace notifications watches need (turning them on with `--keyspace-events`), and the SCAN
// that finds the keys a watched pattern matches, within `--max-watch-keys` and a step budget.
import Logging

/// One loop's notification check and pattern scans; confined to its loop.
final class WatchCommands {
    private let redis: CommandSender
    private let cluster: ClusterCommands?
    private let limits: WatchLimits
    private let logger: Logger
    /// Whether every node's `notify-keyspace-events` was found sufficient since the links were
    /// last lost (a restarted Redis may have lost a setting made with CONFIG SET).
    var eventsChecked = false
    /// Ops waiting for a check under way.
    private var eventsWaiters: [(HTTPError?) -> Void] = []
    private var checking = false
    /// SCAN calls one pattern's snapshot may make (COUNT 1000 each): about a million keys
    /// looked at; a larger key space needs a pattern with a literal part.
    static let scanBudget = 1000

    init(redis: CommandSender, cluster: ClusterCommands?, limits: WatchLimits, logger: Logger) {
        self.redis = redis
        self.cluster = cluster
        self.limits = limits
        self.logger = logger
    }

    /// Checks (once per link period) that every node sends the notifications watches need;
    /// with `--keyspace-events`, turns on what is missing.
    func ensureEvents(_ done: @escaping (HTTPError?) -> Void) {
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

    /// The keys each pattern matches now, together; `watch_too_broad` when one matches more
    /// than `--max-watch-keys`.
    func scanAll(_ patterns: ArraySlice<[UInt8]>, found: Set<[UInt8]>, _ done: @escaping (Result<Set<[UInt8]>, HTTPError>) -> Void) {
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
    func scan(
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
