// A WebSocket client taking work from a Redis list one item at a time. Each item moves
// atomically (BLMOVE) into this client's processing list and leaves it only on ack; if the client
// goes away, everything it held goes back to the head of the queue. The list is leased
// (QueueLeases): if this Herald dies with it, another puts the items back. Nothing taken is lost.
import FoundationEssentials

/// A queue consumer; confined to its loop.
final class QueueWorker {
    let queue: RedisName
    private let connection: any QueueClient
    /// This consumer's processing list; shares the queue's hash slot (QueueKeys) so BLMOVE
    /// works in a cluster.
    let processing: RedisName
    /// Items handed to the client and not acked, by tag.
    private var held: [Int: [UInt8]] = [:]
    private var nextTag = 1
    private var popping = false
    /// The waiting pop's place in the blocking pool, to cut it short if the client leaves.
    private var waiting: BlockingPool.Ticket?
    /// Acks waiting for replicas (WAIT), cut short when the client leaves.
    private var replicaWaits: [BlockingPool.Ticket] = []
    private var stopped = false

    private let services: QueueServices

    init(queue: RedisName, connection: any QueueClient, services: QueueServices) {
        self.queue = queue
        self.connection = connection
        self.services = services
        processing = QueueKeys.processingList(queue, id: UUID().uuidString.lowercased())
        keepLease()
    }

    /// Renews this worker's lease every third of a lease period while it lives, and puts back
    /// what dead workers of the queue left behind.
    private func keepLease() {
        // A worker that left with a pop still waiting in Redis keeps its lease until the pop
        // answers: the item may yet land in its list.
        guard !stopped || popping else { return }
        services.leases.renew(processing, of: queue)
        services.leases.reapIfDue(queue)
        services.loop.schedule(afterMs: max(100, services.leases.leaseMs / 3)) { self.keepLease() }
    }
    private var key: [UInt8] { queue.bytes }

    /// Takes the next item (waiting up to `wait` seconds) and sends it as
    /// `{"type":"item","queue":..,"tag":n,"data":..}`, or `{"type":"empty"}` when the wait ends.
    func pop(wait: Int, id: JSONValue?) {
        guard !popping else {
            sendJSON(Envelope.error(code: "pop_pending", message: "a pop is already waiting on this connection", id: id))
            return
        }
        guard services.redis.isReady else {
            sendJSON(Envelope.error(code: "redis_unavailable", message: "Redis is unreachable", id: id))
            return
        }
        popping = true
        // Held strongly until Redis answers: an item that arrives after the client left must
        // still be put back.
        let handle: (RedisReply) -> Void = { reply in
            self.popping = false
            self.waiting = nil
            if self.stopped {
                // The client left while the pop waited: whatever landed goes back (even after
                // an error reply: the link may have died after Redis moved the item).
                self.services.leases.putBack(self.processing, of: self.queue)
                return
            }
            switch reply {
            case .string(let item):
                let tag = self.nextTag
                self.nextTag += 1
                self.held[tag] = item
                self.sendJSON(
                    Envelope.answer("item", id: id) { o in
                        o.field("queue", self.queue)
                        o.field("tag", tag)
                        if UTF8Validation.isValid(item) {
                            o.field("data", utf8: item)
                        } else {
                            o.field("data", Data(item).base64EncodedString())
                            o.field("encoding", "base64")
                        }
                    })
            case .null:
                self.sendJSON(Envelope.answer("empty", id: id) { $0.field("queue", self.queue) })
            default:
                let error = RedisErrors.httpError(reply, command: "BLMOVE")
                self.sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
            }
        }
        let started: Bool
        if wait == 0 {
            started = services.redis.send(key: key, .command("LMOVE", queue, processing, "RIGHT", "LEFT"), handle)
        } else {
            waiting = services.blocking.run(key: key, .command("BLMOVE", queue, processing, "RIGHT", "LEFT", String(wait)), handle)
            started = waiting != nil
        }
        if !started {
            popping = false
            sendJSON(Envelope.error(code: "too_many_waiters", message: "all blocking Redis connections of this loop are waiting", id: id))
        }
    }

    /// The client is done with `tag`: the item leaves the processing list for good.
    func ack(tag: Int, wait: ReplicaWait? = nil, id: JSONValue?) {
        guard let item = held.removeValue(forKey: tag) else {
            sendJSON(Envelope.error(code: "unknown_tag", message: "no item with tag \(tag) is held by this connection", id: id))
            return
        }
        let remove = [Array("LREM".utf8), processing.bytes, Array("-1".utf8), item]
        guard let wait else {
            let sent = services.redis.send(key: key, remove) { self.acked(tag, item, $0, id: id) }
            if !sent {
                held[tag] = item
                sendJSON(Envelope.error(code: "redis_unavailable", message: "Redis is unreachable; the ack was not recorded", id: id))
            }
            return
        }
        // LREM and WAIT on one connection of the blocking pool: WAIT counts its own
        // connection's writes, and would stall the loop's pipelined link.
        guard services.redis.isReady else {
            held[tag] = item
            sendJSON(Envelope.error(code: "redis_unavailable", message: "Redis is unreachable; the ack was not recorded", id: id))
            return
        }
        let started = wait.run(remove, key: key, on: services.blocking) { reply, replicas in
            self.acked(tag, item, reply, id: id, wait: wait, replicas: replicas)
        }
        guard let started else {
            held[tag] = item
            sendJSON(Envelope.error(code: "too_many_waiters", message: "all blocking Redis connections of this loop are waiting", id: id))
            return
        }
        replicaWaits.removeAll { !services.blocking.isRunning($0) }
        replicaWaits.append(started)
    }

    /// Answers an ack from LREM's reply (and, with `wait`, the replicas WAIT counted).
    private func acked(_ tag: Int, _ item: [UInt8], _ reply: RedisReply, id: JSONValue?, wait: ReplicaWait? = nil, replicas: Int? = nil) {
        if reply.integer == 0 {
            // Not in the list any more: its lease ran out (this Herald lost Redis for longer
            // than --queue-lease) and it went back to the queue, maybe to another worker.
            sendJSON(
                Envelope.error(
                    code: "lease_lost", message: "the item went back to the queue when this worker's lease ran out; it may be handed out again", id: id))
        } else if reply.integer != nil {
            let count = replicas ?? 0
            if let wait, count < wait.replicas {
                // Acked on the primary only: after a failover the item may be handed out again.
                let error = wait.shortfall(count)
                sendJSON(
                    Envelope.answer("error", id: id) {
                        $0.field("code", error.code)
                        $0.field("message", error.message)
                        $0.field("queue", self.queue)
                        $0.field("tag", tag)
                        $0.field("replicas", count)
                        $0.field("asked", wait.replicas)
                    })
                return
            }
            sendJSON(
                Envelope.answer("acked", id: id) {
                    $0.field("queue", self.queue)
                    $0.field("tag", tag)
                    if wait != nil { $0.field("replicas", count) }
                })
        } else {
            held[tag] = item
            let error = RedisErrors.httpError(reply, command: "LREM")
            sendJSON(Envelope.error(code: error.code, message: error.message, id: id))
        }
    }

    /// The client left: everything it held goes back to the pop end of the queue, oldest last
    /// in, so the oldest is taken first again (an item still on its way from a pop follows when
    /// it lands). A waiting pop is cut short, freeing its blocking connection. If Redis is
    /// unreachable now, the lease runs out and a reaper does it.
    func stop() {
        guard !stopped else { return }
        stopped = true
        held = [:]
        // With a pop still waiting, the list stays registered (and leased) until it answers.
        services.leases.putBack(processing, of: queue, unregister: !popping)
        if let waiting { services.blocking.cancel(waiting) }
        for ticket in replicaWaits { services.blocking.cancel(ticket) }
        replicaWaits = []
    }

    private func sendJSON(_ bytes: [UInt8]) {
        guard !stopped else { return }
        connection.sendMessage(bytes)
    }
}
