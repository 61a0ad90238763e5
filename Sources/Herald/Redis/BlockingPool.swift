// Connections for blocking commands (BRPOP, BLMOVE), each of which holds a connection for its
// whole wait. The pool is capped per loop, so waiting clients can never pin an unbounded
// number of Redis connections: past the cap, callers are told no and answer 503. A wait whose
// client left is cut short at once (`cancel`: CLIENT UNBLOCK, sent on the loop's command link to
// the same node), so departed clients cannot keep the pool full. A connection idle for
// `idleMs` closes, and one that fails is dropped rather than reconnected: the pool holds
// connections only while waits need them.
import Logging

/// A loop's capped set of connections for blocking commands; confined to its loop.
public final class BlockingPool {
    fileprivate final class Member {
        let link: RedisConnection
        /// The node's `host:port` in a cluster (where CLIENT UNBLOCK for this link must go).
        let address: String?
        /// The commands waiting for the link to come up, in order.
        var queued: [(arguments: [[UInt8]], callback: (RedisReply) -> Void)] = []
        var busy = false
        /// Commands started on this link, so a cancel can tell whether its command still runs.
        var started = 0
        /// The link's Redis client id (CLIENT ID, asked when it connects), for CLIENT UNBLOCK.
        var clientID: Int?
        /// Whether CLIENT ID has answered on the current connection (Redis may refuse it).
        var idAnswered = false
        /// Monotonic ms since when the link has had nothing to run.
        var idleSinceMs = Clock.nowMs()
        init(link: RedisConnection, address: String?) {
            self.link = link
            self.address = address
        }
    }

    /// One command run by the pool, to cut its wait short with `cancel`.
    public struct Ticket {
        fileprivate let member: Member
        /// Which of the member's commands.
        fileprivate let number: Int
    }

    private let loop: EventLoop
    private let endpoint: RedisEndpoint
    /// Where CLIENT UNBLOCK goes on a single Redis (the loop's command link).
    private let control: CommandSender
    /// In a cluster, each command goes to its key's master (and its CLIENT UNBLOCK too).
    private let cluster: ClusterCommands?
    private let logger: Logger
    /// Most connections this pool opens.
    public let capacity: Int
    /// How long an unused connection stays open, ms.
    private let idleMs: Int64
    private var members: [Member] = []
    /// Sentinel: readies each new connection to follow the master (set by the loop).
    public var prepare: ((RedisConnection) -> Void)?

    public init(
        loop: EventLoop, endpoint: RedisEndpoint, capacity: Int, idleMs: Int64, control: CommandSender,
        cluster: ClusterCommands?, logger: Logger
    ) {
        self.loop = loop
        self.endpoint = endpoint
        self.capacity = capacity
        self.idleMs = idleMs
        self.control = control
        self.cluster = cluster
        self.logger = logger
    }

    /// Commands running now.
    public var busyCount: Int { members.reduce(0) { $0 + ($1.busy ? 1 : 0) } }

    /// Runs one blocking command on `key`; nil when every connection is busy and the cap is
    /// reached (an idle connection to another node is closed to make room).
    public func run(key: [UInt8], _ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) -> Ticket? {
        guard let member = lease(for: key) else { return nil }
        let finish: (RedisReply) -> Void = { [unowned member] reply in
            member.busy = false
            member.idleSinceMs = Clock.nowMs()
            callback(reply)
        }
        send([arguments], on: member, finish)
        return Ticket(member: member, number: member.started)
    }

    /// Runs `commands` in order on one connection and hands `done` their replies, in order: a
    /// write and the `WAIT` that counts the replicas holding it (WAIT counts the writes of its
    /// own connection, and blocks that connection, so it may not run on the loop's pipelined
    /// link). Without every reply by `deadlineMs`, the connection is dropped and the missing
    /// replies are link losses. `cancel` with the ticket cuts a blocking one short. Nil when
    /// every connection is busy and the cap is reached.
    public func runInOrder(key: [UInt8], _ commands: [[[UInt8]]], deadlineMs: Int64, _ done: @escaping ([RedisReply]) -> Void) -> Ticket? {
        guard let member = lease(for: key) else { return nil }
        var replies: [RedisReply] = []
        var timer: Int?
        let collect: (RedisReply) -> Void = { [unowned self, unowned member] reply in
            replies.append(reply)
            guard replies.count == commands.count else { return }
            if let timer { self.loop.cancelTimer(timer) }
            member.busy = false
            member.idleSinceMs = Clock.nowMs()
            done(replies)
        }
        timer = loop.schedule(afterMs: deadlineMs) { [weak member] in
            timer = nil
            member?.link.restart("no reply within \(deadlineMs) ms")
        }
        send(commands, on: member, collect)
        return Ticket(member: member, number: member.started)
    }

    /// A connection to `key`'s node with nothing to run, marked busy; nil when the cap is
    /// reached (an idle connection to another node is closed to make room).
    private func lease(for key: [UInt8]) -> Member? {
        let address = cluster?.owner(of: key)
        let target = cluster.flatMap { cluster in address.map(cluster.endpoint(for:)) } ?? endpoint
        let member: Member
        // On a single Redis every connection goes to the one master (under Sentinel, wherever
        // it is now: `relocate` drops connections to a former one).
        let candidates = members.filter { !$0.busy && (cluster == nil || $0.link.endpoint == target) }
        if let free = candidates.first(where: { $0.link.isReady }) ?? candidates.first {
            member = free
        } else {
            if members.count >= capacity, let idle = members.firstIndex(where: { !$0.busy }) {
                members[idle].link.stop()
                members.remove(at: idle)
            }
            guard members.count < capacity else { return nil }
            member = open(target, address: address)
        }
        member.busy = true
        member.started += 1
        return member
    }

    /// Sends `commands` now, or once the member's link is up.
    private func send(_ commands: [[[UInt8]]], on member: Member, _ callback: @escaping (RedisReply) -> Void) {
        for arguments in commands {
            if member.link.isReady {
                member.link.send(arguments, callback)
            } else {
                member.queued.append((arguments, callback))
            }
        }
    }

    private func open(_ target: RedisEndpoint, address: String?) -> Member {
        let member = Member(
            link: RedisConnection(
                loop: loop, endpoint: target, mode: .commands, logger: logger,
                replyTimeoutMs: 320_000), address: address)
        member.link.onReady = { [unowned member] in
            member.link.send(.command("CLIENT", "ID")) { reply in
                member.clientID = reply.integer
                member.idAnswered = true
            }
            let queued = member.queued
            member.queued = []
            for command in queued { member.link.send(command.arguments, command.callback) }
        }
        member.link.onDown = { [unowned self, unowned member] _ in
            member.clientID = nil
            member.idAnswered = false
            let queued = member.queued
            member.queued = []
            for command in queued { command.callback(.linkLost(.notSent("Redis is unreachable"))) }
            // Not reconnected (the next wait opens a fresh connection); dropped once the link
            // has finished failing.
            self.loop.deferToEndOfTick { self.drop(member) }
        }
        prepare?(member.link)
        members.append(member)
        member.link.connect()
        return member
    }

    private func drop(_ member: Member) {
        member.link.stop()
        members.removeAll { $0 === member }
    }

    /// The client of `ticket`'s command went away: ends its wait now. The reply still reaches
    /// the command's callback: nil, or what Redis had already popped (the caller puts it back).
    /// An UNBLOCK still on its way when its command ends anyway may, rarely, cut short the next
    /// wait on the same connection: that one then ends empty early, and nothing is lost.
    /// Whether the command of `ticket` is still queued or running (not answered or cut short).
    public func isRunning(_ ticket: Ticket) -> Bool {
        ticket.member.busy && ticket.member.started == ticket.number
    }

    public func cancel(_ ticket: Ticket) {
        let member = ticket.member
        guard member.busy, member.started == ticket.number else { return }
        if !member.queued.isEmpty {
            // Never sent: nothing can have been popped.
            let queued = member.queued
            member.queued = []
            for command in queued { command.callback(.null) }
            return
        }
        guard let id = member.clientID else {
            // CLIENT ID's answer comes before the command's; a Redis that refused it (an ACL)
            // leaves the wait to run out.
            if !member.idAnswered { retryCancel(ticket, afterMs: 20) }
            return
        }
        let unblock: [[UInt8]] = .command("CLIENT", "UNBLOCK", String(id))
        let answered: (RedisReply) -> Void = { reply in
            // 0: nothing blocked under that id. The command may still be on its way (it travels
            // on another connection than the UNBLOCK), or its answer is: look again shortly.
            if reply.integer == 0 {
                self.retryCancel(ticket, afterMs: 20)
            } else if let error = reply.errorMessage {
                self.logger.warning("CLIENT UNBLOCK refused; a departed client's wait runs to its end", metadata: ["error": "\(error)"])
            } else if reply.linkLoss != nil {
                self.retryCancel(ticket, afterMs: 250)
            }
        }
        let sent: Bool
        if let cluster {
            // Client ids are per node: the UNBLOCK must reach the node the link is on.
            guard let address = member.address else { return }
            sent = cluster.send(node: address, unblock, answered)
        } else {
            sent = control.send(key: nil, unblock, answered)
        }
        if !sent { retryCancel(ticket, afterMs: 250) }
    }

    private func retryCancel(_ ticket: Ticket, afterMs delay: Int64) {
        loop.schedule(afterMs: delay) { [weak self] in self?.cancel(ticket) }
    }

    /// Ends every wait now (the drain is over): each callback gets nil or what was popped.
    public func cancelAll() {
        for member in members where member.busy {
            cancel(Ticket(member: member, number: member.started))
        }
    }

    /// Reply timeouts, and closing connections idle for `idleMs`.
    public func checkTimeouts(now: Int64) {
        for member in members { member.link.checkTimeouts(now: now) }
        for member in members where !member.busy && now - member.idleSinceMs >= idleMs {
            drop(member)
        }
    }

    /// Sentinel: the master moved to `master`. Every connection elsewhere drops (its wait hears
    /// the link was lost) and the next waits open fresh ones to the new master.
    public func relocate(to master: RedisEndpoint, _ reason: String) {
        for member in members where member.link.endpoint != master { member.link.restart(reason) }
    }

    public func stop() {
        for member in members { member.link.stop() }
    }
}
