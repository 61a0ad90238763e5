// Where keyed commands go: one Redis server, or (in a cluster) the node owning the key's slot.

/// Sends commands to the Redis node that holds `key`; confined to its loop.
public protocol CommandSender: AnyObject {
    /// True when commands can be sent now.
    var isReady: Bool { get }
    /// Why the link is down, while it is.
    var lastError: String { get }
    /// Queues a command; false (and no callback) when Redis is unreachable. A nil `key` means
    /// the command may run on any node.
    @discardableResult
    func send(key: [UInt8]?, _ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) -> Bool
    /// Commands sent and not yet answered.
    var pendingCount: Int { get }
    /// Reconnections after failures, for metrics.
    var reconnects: Int { get }
    /// Error replies received, for metrics.
    var errorReplies: Int { get }
    func connect()
    func stop()
    /// Declares links wedged whose oldest command waited too long.
    func checkTimeouts(now: Int64)
}

extension RedisConnection: CommandSender {
    @discardableResult
    public func send(key: [UInt8]?, _ arguments: [[UInt8]], _ callback: @escaping (RedisReply) -> Void) -> Bool {
        send(arguments, callback)
    }
}

extension Array where Element == [UInt8] {
    /// Command arguments from strings.
    public static func command(_ parts: String...) -> [[UInt8]] { parts.map { [UInt8]($0.utf8) } }
}
