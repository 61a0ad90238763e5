// Replicated acknowledgements: a write (stream append, queue push, an ack) asked with
// `replicas=N&timeout=MS` runs `WAIT N MS` after it, on the same Redis connection (WAIT counts
// the writes of its own connection), and is answered with how many replicas hold it. Redis
// replication is asynchronous: without this, an acknowledged write can vanish when the primary
// dies before a replica has it. WAIT blocks its connection, so the pair runs on a connection
// of the loop's blocking pool (on the key's node), never on the pipelined command link.

/// How many replicas must hold a write before it is answered, and how long to wait for them.
struct ReplicaWait {
    /// Most replicas one write may ask for (more than any sane replication setup has).
    static let maxReplicas = 16
    /// Longest wait one write may ask for, ms.
    static let maxTimeoutMs = 60_000
    /// The wait when `replicas` comes without `timeout`, ms.
    static let defaultTimeoutMs = 1000
    /// Beyond WAIT's own timeout, how long its reply may take before the connection is dropped
    /// (a primary that stopped answering): the Redis links' reply deadline, ms.
    static let replyGraceMs: Int64 = 5000

    let replicas: Int
    /// WAIT's timeout, ms.
    let timeoutMs: Int

    /// The wait `replicas` and `timeout` ask for (their text, from a query or a JSON number);
    /// nil when neither is given. Throws 400 on values out of range.
    static func parse(replicas: String?, timeout: String?) throws(HTTPError) -> ReplicaWait? {
        guard let replicas else {
            if let timeout { throw .badRequest("timeout needs replicas (timeout=\(timeout) alone waits for nothing)") }
            return nil
        }
        guard let count = Int(replicas), (1...maxReplicas).contains(count) else {
            throw .badRequest("replicas must be a whole number from 1 to \(maxReplicas), not '\(replicas)'")
        }
        var ms = defaultTimeoutMs
        if let timeout {
            guard let value = Int(timeout), (1...maxTimeoutMs).contains(value) else {
                throw .badRequest("timeout must be a whole number of ms from 1 to \(maxTimeoutMs), not '\(timeout)'")
            }
            ms = value
        }
        return ReplicaWait(replicas: count, timeoutMs: ms)
    }

    /// The wait a JSON op asks for with its `replicas` and `timeout` numbers.
    static func parse(_ json: JSONValue) throws(HTTPError) -> ReplicaWait? {
        func text(_ name: String) throws(HTTPError) -> String? {
            guard let value = json[name] else { return nil }
            guard case .number(let number) = value else { throw .badRequest("\(name) must be a number") }
            return number
        }
        return try parse(replicas: text("replicas"), timeout: text("timeout"))
    }

    /// Runs `write`, then WAIT, on one connection of `pool` to `key`'s node. `done` gets the
    /// write's reply and the number of replicas WAIT counted (nil when WAIT gave none: the link
    /// was lost or Redis refused it). Nil when `pool` has no connection free; else the ticket
    /// that cuts the wait short (`pool.cancel`) when the client leaves.
    func run(_ write: [[UInt8]], key: [UInt8], on pool: BlockingPool, _ done: @escaping (RedisReply, Int?) -> Void) -> BlockingPool.Ticket? {
        let wait: [[UInt8]] = .command("WAIT", String(replicas), String(timeoutMs))
        return pool.runInOrder(key: key, [write, wait], deadlineMs: Int64(timeoutMs) + Self.replyGraceMs) { replies in
            done(replies[0], replies[1].integer)
        }
    }

    /// What a client is told when fewer replicas than asked hold its write.
    func shortfall(_ acknowledged: Int) -> HTTPError {
        .notReplicated(asked: replicas, acknowledged: acknowledged, timeoutMs: timeoutMs)
    }
}
