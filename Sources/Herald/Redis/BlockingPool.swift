// Connections for blocking commands (BRPOP, BLMOVE), each of which holds a connection for its
// whole wait. The pool is capped per loop, so waiting clients can never pin an unbounded
// number of Redis connections: past the cap, callers are told no and answer 503.
import Logging

/// A loop's capped set of connections for blocking commands; confined to its loop.
public final class BlockingPool {
    private final class Member {
        let link: RedisConnection
        /// The command waiting for the link to come up, if any.
        var queued: (arguments: [[UInt8]], callback: (RedisReply) -> Void)?
        var busy = false
        init(link: RedisConnection) { self.link = link }
    }

    private let loop: EventLoop
    private let endpoint: RedisEndpoint
    /// In a cluster, each command goes to its key's master.
    private let cluster: ClusterCommands?
    private let logger: Logger
    /// Most connections this pool opens.
    public let capacity: Int
    private var members: [Member] = []

    public init(loop: EventLoop, endpoint: RedisEndpoint, capacity: Int, cluster: ClusterCommands?, logger: Logger) {
        self.loop = loop
        self.endpoint = endpoint
        self.cluster = cluster
        self.capacity = capacity
        self.logger = logger
    }

    /// Runs one blocking command on `key`; false when every connection is busy and the cap is
    /// reached (an idle connection to another node is closed to make room).
    public func run(key: [UInt8], _ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) -> Bool {
        let target = cluster.flatMap { cluster in cluster.owner(of: key).map(cluster.endpoint(for:)) } ?? endpoint
        let member: Member
        let candidates = members.filter { !$0.busy && $0.link.endpoint == target }
        if let free = candidates.first(where: { $0.link.isReady }) ?? candidates.first {
            member = free
        } else {
            if members.count >= capacity, let idle = members.firstIndex(where: { !$0.busy }) {
                members[idle].link.stop()
                members.remove(at: idle)
            }
            guard members.count < capacity else { return false }
            member = Member(link: RedisConnection(loop: loop, endpoint: target, mode: .commands, logger: logger,
                                                  replyTimeoutMs: 320_000))
            member.link.onReady = { [unowned self, unowned member] in self.flushQueued(member) }
            member.link.onDown = { [unowned member] _ in
                if let queued = member.queued {
                    member.queued = nil
                    member.busy = false
                    queued.callback(.error("HERALD_LINK_DOWN Redis is unreachable"))
                }
            }
            members.append(member)
            member.link.connect()
        }
        member.busy = true
        let finish: (RedisReply) -> Void = { [unowned member] reply in
            member.busy = false
            callback(reply)
        }
        if member.link.isReady {
            member.link.send(arguments, finish)
        } else {
            member.queued = (arguments, finish)
        }
        return true
    }

    private func flushQueued(_ member: Member) {
        guard let queued = member.queued else { return }
        member.queued = nil
        member.link.send(queued.arguments, queued.callback)
    }

    public func checkTimeouts(now: Int64) {
        for member in members { member.link.checkTimeouts(now: now) }
    }

    public func stop() {
        for member in members { member.link.stop() }
    }
}
