// Redis's `notify-keyspace-events` setting as watching needs it: which classes of event must be
// on, whether a server's current value has them, and the value that adds them to it. Pure.

enum KeyspaceSetting {
    /// `K`: keyspace channels (`__keyspace@<db>__:<key>`), and every class of change a value
    /// can go through: `g` generic (DEL, EXPIRE, RENAME, ...), `$` string, `l` list, `s` set,
    /// `h` hash, `z` sorted set, `x` expired, `e` evicted, `t` stream. `A` stands for
    /// `g$lshzxet` (and `d`, module types) in Redis's own syntax.
    static let needed: [Character] = ["K", "g", "$", "l", "s", "h", "z", "x", "e", "t"]

    /// The classes `current` (CONFIG GET's value) lacks; empty when watching works.
    static func missing(from current: String) -> [Character] {
        let has = Set(current)
        let all = has.contains("A")
        return needed.filter { !has.contains($0) && !(all && $0 != "K") }
    }

    /// `current` with the missing classes added (nothing that was on is turned off).
    static func merged(_ current: String) -> String {
        current + String(missing(from: current))
    }

    /// The value to tell an operator to set: `current` with `K` and `A` (every class) added,
    /// so nothing that was on is turned off (`KA` when nothing was).
    static func advice(_ current: String) -> String {
        let missing = Self.missing(from: current)
        guard !missing.isEmpty else { return current }
        return current + (missing.contains("K") ? "K" : "") + (missing.contains { $0 != "K" } ? "A" : "")
    }

    /// The `watch_unavailable` message for a server whose setting is `current`.
    static func unavailableMessage(_ current: String, node: String?) -> String {
        let missing = String(Self.missing(from: current))
        let shown = current.isEmpty ? "\"\"" : current
        let advice = advice(current)
        return "keyspace notifications lack '\(missing)' on Redis\(node.map { " \($0)" } ?? "") (notify-keyspace-events is \(shown)): "
            + "set notify-keyspace-events to \(advice) (CONFIG SET notify-keyspace-events \(advice), or in redis.conf), "
            + "or start Herald with --keyspace-events to let it add them"
    }
}
