// One client consuming a stream as a member of a consumer group: XGROUP CREATE ... MKSTREAM on
// demand, its own pending entries first (a reconnecting consumer resumes), then new entries with
// XREADGROUP whenever the loop's tail sees the stream grow, at most `prefetch` unacked at a
// time; acks become XACK; entries idle on vanished consumers are taken over with XAUTOCLAIM.

/// A consumer-group member; confined to its loop.
final class GroupReader: StreamListener {
    let stream: RedisName
    let group: RedisName
    let consumer: RedisName
    private let connection: any StreamClient
    /// Where a group created here starts (`$` or an id).
    private let createAt: String
    /// Most entries delivered and not yet acked.
    private let prefetch: Int
    /// Ids delivered and not acked.
    private var unacked: Set<StreamID> = []
    private var fetching = false
    private var claiming = false
    private var started = false
    private var stopped = false
    /// Acks waiting for replicas (WAIT), cut short when the client leaves.
    private var replicaWaits: [BlockingPool.Ticket] = []

    private let services: StreamServices

    init(
        stream: RedisName, group: RedisName, consumer: RedisName, createAt: String, prefetch: Int, connection: any StreamClient,
        services: StreamServices
    ) {
        self.services = services
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.createAt = createAt
        self.prefetch = prefetch
        self.connection = connection
    }

    private var credit: Int { prefetch - unacked.count }

    func start() {
        let retry = { [weak self] (outcome: RedisReply) in
            guard let self, !self.stopped, outcome.linkLoss != nil else { return }
            self.services.loop.schedule(afterMs: 1000) { [weak self] in self?.start() }
        }
        command(
            .command("XGROUP", "CREATE", stream, group, createAt, "MKSTREAM"), tolerate: RedisErrors.isExistingGroup,
            { [unowned self] _ in
                // Entries this consumer name already holds (a reconnect) come first.
                self.command(
                    .command(
                        "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", String(self.prefetch),
                        "STREAMS", self.stream, "0"),
                    { reply in
                        self.deliver(reply)
                        self.command(
                            .command("XREVRANGE", self.stream, "+", "-", "COUNT", "1"),
                            { last in
                                self.started = true
                                let tip = StreamEntry.list(last, stream: self.stream).first?.id ?? .zero
                                self.services.tailer.listen(self, stream: self.stream, from: tip)
                                self.tick()
                            }, failed: retry)
                    }, failed: retry)
            }, failed: retry)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        services.tailer.stopListening(self, stream: stream)
        // Acks still waiting for replicas free their blocking connections now (CLIENT UNBLOCK
        // ends the WAIT), not when its timeout runs out.
        if let pool = services.blocking { for ticket in replicaWaits { pool.cancel(ticket) } }
        replicaWaits = []
    }

    /// The tail saw new entries: this consumer asks the group for its share.
    func entryArrived(_ entry: StreamEntry) { fetch() }

    /// Every second: fetch (in case a wake-up was missed) and claim entries idle on vanished
    /// consumers for longer than `--claim-idle`.
    private func tick() {
        guard !stopped else { return }
        fetch()
        claim()
        services.loop.schedule(afterMs: 1000) { [weak self] in self?.tick() }
    }

    /// Entries one XREADGROUP asks for: small batches, so the consumers a loop wakes together
    /// take turns instead of the first one taking everything.
    static let batch = 10

    private func fetch() {
        guard started, !stopped, !fetching, credit > 0 else { return }
        fetching = true
        let asked = min(credit, Self.batch)
        command(.command("XREADGROUP", "GROUP", group, consumer, "COUNT", String(asked), "STREAMS", stream, ">")) { [unowned self] reply in
            self.fetching = false
            let got = self.deliver(reply)
            if got == asked { self.fetch() }
        } failed: { [unowned self] _ in
            self.fetching = false
        }
    }

    private func claim() {
        guard started, !stopped, !claiming, credit > 0 else { return }
        claiming = true
        command(
            .command(
                "XAUTOCLAIM", stream, group, consumer, String(services.claimIdleMs), "0-0",
                "COUNT", String(credit))
        ) { [unowned self] reply in
            self.claiming = false
            if case .array(let parts) = reply, parts.count >= 2 {
                self.deliverEntries(StreamEntry.list(parts[1], stream: self.stream))
            }
        } failed: { [unowned self] _ in
            self.claiming = false
        }
    }

    /// Delivers the entries of an XREADGROUP reply; returns how many there were.
    @discardableResult
    private func deliver(_ reply: RedisReply) -> Int {
        guard case .array(let streams) = reply, case .array(let pair)? = streams.first, pair.count == 2 else { return 0 }
        let entries = StreamEntry.list(pair[1], stream: stream)
        deliverEntries(entries)
        return entries.count
    }

    private func deliverEntries(_ entries: [StreamEntry]) {
        var deleted: [StreamID] = []
        for entry in entries {
            // An entry deleted while pending has no fields left: nothing to hand out, ack it.
            if entry.fields.isEmpty {
                deleted.append(entry.id)
                continue
            }
            guard !unacked.contains(entry.id) else { continue }
            unacked.insert(entry.id)
            connection.sendMessage(entry.envelope(group: group))
        }
        if !deleted.isEmpty {
            command([Array("XACK".utf8), stream.bytes, group.bytes] + deleted.map { Array($0.description.utf8) }) { _ in }
        }
    }

    /// The client's ack of `ids`: XACK, then more entries if credit allows.
    func ack(_ ids: [StreamID], wait: ReplicaWait? = nil, done: @escaping (Result<Int, HTTPError>, _ replicas: Int?) -> Void) {
        var arguments: [[UInt8]] = .command("XACK", stream, group)
        arguments += ids.map { Array($0.description.utf8) }
        guard let wait else {
            command(arguments) { [unowned self] reply in
                for id in ids { self.unacked.remove(id) }
                done(.success(reply.integer ?? 0), nil)
                self.fetch()
            } failed: { outcome in
                done(.failure(RedisErrors.httpError(outcome, command: "XACK")), nil)
            }
            return
        }
        // XACK and WAIT on one connection of the blocking pool: WAIT counts its own
        // connection's writes, and would stall the loop's pipelined link.
        guard let pool = services.blocking, services.redis.isReady else {
            done(.failure(RedisErrors.unreachable(services.redis)), nil)
            return
        }
        let started = wait.run(arguments, key: stream.bytes, on: pool) { [weak self] reply, replicas in
            guard let self, !self.stopped else { return }
            guard case .integer(let count) = reply else {
                done(.failure(RedisErrors.httpError(reply, command: "XACK")), nil)
                return
            }
            for id in ids { self.unacked.remove(id) }
            done(.success(count), replicas)
            self.fetch()
        }
        guard let started else {
            done(.failure(.tooManyWaiters(capacity: pool.capacity)), nil)
            return
        }
        replicaWaits.removeAll { !pool.isRunning($0) }
        replicaWaits.append(started)
    }

    /// Sends a command about the group. `failed` hears an error reply (which the client has
    /// also been told of, unless `tolerate` accepts it) or the link lost (`.linkLost`, also when
    /// the command could not be sent).
    private func command(
        _ arguments: [[UInt8]], tolerate: @escaping (RedisReply) -> Bool = { _ in false },
        _ done: @escaping (RedisReply) -> Void, failed: @escaping (RedisReply) -> Void = { _ in }
    ) {
        let sent = services.redis.send(key: stream.bytes, arguments) { [weak self] reply in
            guard let self, !self.stopped else { return }
            switch reply {
            case .linkLost: failed(reply)
            case .error where !tolerate(reply):
                self.report(reply)
                failed(reply)
            default: done(reply)
            }
        }
        if !sent { failed(.linkLost(.notSent(services.redis.lastError))) }
    }

    private func report(_ reply: RedisReply) {
        let mapped = RedisErrors.httpError(reply, command: "the consumer group")
        connection.sendMessage(
            Envelope.answer("error", id: nil) { o in
                o.field("code", mapped.code)
                o.field("stream", self.stream)
                o.field("group", self.group)
                o.field("message", mapped.message)
            })
    }
}
