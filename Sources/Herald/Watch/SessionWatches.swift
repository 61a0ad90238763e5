// One subscriber connection's watches: the keys and patterns it holds, the `watch` and
// `unwatch` ops, and its side of the registry (its queue, its notices). The session hands it
// ops and its lifecycle; the loop's WatchRegistry does the Redis work.

/// A connection's watched keys and patterns; confined to its loop.
final class SessionWatches: Watcher {
    private let registry: WatchRegistry
    private let connection: any WatchClient
    private(set) var keys: Set<RedisName> = []
    private(set) var patterns: Set<RedisName> = []
    /// Watch ops waiting on Redis (their subscription, SCAN or snapshot).
    private var pending = 0
    /// Watch ops one connection may have waiting.
    static let maxPending = 16
    private var closed = false

    init(registry: WatchRegistry, connection: any WatchClient) {
        self.registry = registry
        self.connection = connection
    }

    /// Keys and patterns held: each counts against `--max-subscriptions`.
    var count: Int { keys.count + patterns.count }

    // MARK: Watcher

    var isWatching: Bool { !closed }

    func hasRoom(for bytes: Int) -> Bool { connection.hasRoom(for: bytes) }

    func send(_ message: SharedMessage) {
        guard !closed else { return }
        connection.sendMessage(message)
    }

    /// A message for this connection alone (an answer, a notice).
    private func send(_ json: [UInt8]) {
        guard !closed else { return }
        connection.sendMessage(json)
    }

    func patternLost(_ pattern: [UInt8]) { send(Envelope.watchGap(pattern: pattern)) }

    func patternResynced(_ pattern: [UInt8]) {
        send(Envelope.watching("watching", keys: [], patterns: [RedisName(bytes: pattern)], id: nil))
    }

    // MARK: Lifecycle

    func drained() { registry.drained(self) }

    func close() {
        closed = true
        registry.leave(self, keys: Array(keys), patterns: Array(patterns))
        keys = []
        patterns = []
    }

    /// Refuses names no client may watch: Herald's own keys, and patterns that match every
    /// key (only wildcards), which would make Redis SCAN its whole key space.
    static func check(keys: [RedisName], patterns: [RedisName]) throws(HTTPError) {
        if let reserved = (keys + patterns).first(where: InternalKeys.isReserved) { throw .reservedName(reserved.text) }
        for pattern in patterns where pattern.bytes.allSatisfy({ $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "?") }) {
            throw .watchTooBroad("'\(pattern)' matches every key: give the pattern a literal part, like order:*")
        }
    }

    /// The first name `grant` does not let the holder watch.
    static func firstDenied(keys: [RedisName], patterns: [RedisName], grant: Grant) -> RedisName? {
        keys.first { !grant.mayWatch($0) } ?? patterns.first { !grant.mayWatch(pattern: $0) }
    }

    /// Starts watching (from the connect query or an op): snapshots, then `watching`; or an
    /// error, and nothing held.
    func watch(keys: [RedisName], patterns: [RedisName], id: JSONValue?) {
        self.keys.formUnion(keys)
        self.patterns.formUnion(patterns)
        pending += 1
        registry.watch(self, keys: keys, patterns: patterns) { [self] error in
            pending -= 1
            guard !closed else { return }
            if let error {
                // Nothing of this op is held, unless an earlier op holds it too.
                self.keys.subtract(keys.filter { !registry.holds(self, .key($0.bytes)) })
                self.patterns.subtract(patterns.filter { !registry.holds(self, .pattern($0.bytes)) })
                send(Envelope.error(code: error.code, message: error.message, id: id))
                return
            }
            // An unwatch while this op waited wins.
            let dropped = (keys.filter { !self.keys.contains($0) }, patterns.filter { !self.patterns.contains($0) })
            if !dropped.0.isEmpty || !dropped.1.isEmpty { registry.unwatch(self, keys: dropped.0, patterns: dropped.1) }
            send(Envelope.watching("watching", keys: keys, patterns: patterns, id: id))
        }
    }

    // MARK: Ops

    /// `{"op":"watch","keys":[..],"patterns":[..]}` (or `"key"`, `"pattern"`): within the
    /// limit (`held`: what the connection holds of every kind) and the grant, and past the
    /// hook (`kind` `key` and `key_pattern`).
    func answerWatch(_ json: JSONValue, id: JSONValue?, grant: Grant, gate: HookGate?, held: Int, limit: Int) throws(HTTPError) {
        let keys = try Self.names(json, plural: "keys", singular: "key")
        let patterns = try Self.names(json, plural: "patterns", singular: "pattern")
        guard !keys.isEmpty || !patterns.isEmpty else { throw .badRequest("give keys (an array) or key, patterns or pattern") }
        try Self.check(keys: keys, patterns: patterns)
        if let denied = Self.firstDenied(keys: keys, patterns: patterns, grant: grant) { throw .forbidden("watching \(denied)") }
        let added = keys.filter { !self.keys.contains($0) }.count + patterns.filter { !self.patterns.contains($0) }.count
        if held + added > limit { throw .tooManySubscriptions(limit: limit) }
        guard pending < Self.maxPending else {
            throw .overloaded("\(Self.maxPending) watch ops of this connection are waiting on Redis; wait for their answers")
        }
        guard let gate, gate.asks(.subscribe) else { return watch(keys: keys, patterns: patterns, id: id) }
        pending += 1
        gate.check(.subscribe, [("key", keys), ("key_pattern", patterns)], verb: "watching") { [self] error in
            pending -= 1
            guard !closed else { return }
            if let error { return send(Envelope.error(code: error.code, message: error.message, id: id)) }
            watch(keys: keys, patterns: patterns, id: id)
        }
    }

    /// `{"op":"unwatch","keys":[..],"patterns":[..]}`; without lists, everything.
    func answerUnwatch(_ json: JSONValue, id: JSONValue?) throws(HTTPError) {
        var keys = try Self.names(json, plural: "keys", singular: "key")
        var patterns = try Self.names(json, plural: "patterns", singular: "pattern")
        if keys.isEmpty && patterns.isEmpty {
            keys = self.keys.sorted()
            patterns = self.patterns.sorted()
        } else {
            keys = keys.filter { self.keys.contains($0) }
            patterns = patterns.filter { self.patterns.contains($0) }
        }
        unwatch(keys: keys, patterns: patterns)
        send(Envelope.watching("unwatched", keys: keys, patterns: patterns, id: id))
    }

    private func unwatch(keys: [RedisName], patterns: [RedisName]) {
        self.keys.subtract(keys)
        self.patterns.subtract(patterns)
        registry.unwatch(self, keys: keys, patterns: patterns)
    }

    /// Ends the watches a refreshed grant no longer covers; tells them as `unsubscribed` with
    /// `kind` `watch` (keys) and `watch_pattern`, reason `forbidden`.
    func endUncovered(_ grant: Grant) {
        let keys = self.keys.filter { !grant.mayWatch($0) }.sorted()
        let patterns = self.patterns.filter { !grant.mayWatch(pattern: $0) }.sorted()
        guard !keys.isEmpty || !patterns.isEmpty else { return }
        unwatch(keys: keys, patterns: patterns)
        if !keys.isEmpty { send(Envelope.revoked(kind: "watch", names: keys.map(\.text))) }
        if !patterns.isEmpty { send(Envelope.revoked(kind: "watch_pattern", names: patterns.map(\.text))) }
    }

    /// Names given as `plural: [..]` or `singular: ".."`, each a non-empty string, each once.
    private static func names(_ json: JSONValue, plural: String, singular: String) throws(HTTPError) -> [RedisName] {
        var names: [RedisName] = []
        var seen: Set<RedisName> = []
        var items: [JSONValue] = []
        if let list = json[plural] {
            guard let array = list.arrayValue else { throw .badRequest("\(plural) must be an array of strings") }
            items = array
        }
        if let one = json[singular] { items.append(one) }
        for item in items {
            guard let name = item.nameValue, !name.isEmpty else { throw .badRequest("\(plural) must hold non-empty strings") }
            if seen.insert(name).inserted { names.append(name) }
        }
        return names
    }
}
