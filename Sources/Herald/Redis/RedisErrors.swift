// How a Redis outcome that is not the expected reply becomes the error a client sees (an HTTP
// answer, or the code and message of a WebSocket/SSE error), in one place.

enum RedisErrors {
    /// Maps the outcome of `command` (an error reply, a lost link, or a reply of the wrong
    /// shape) to the error the client sees. Link loss is told by type, never by text: whether
    /// the client hears "nothing was done" or "it may or may not have run" depends only on
    /// `LinkLoss.mayHaveRun`.
    static func httpError(_ reply: RedisReply, command: String) -> HTTPError {
        switch reply {
        case .linkLost(let loss) where loss.mayHaveRun:
            return .redisUnavailable("the Redis connection was lost before Redis answered \(command); it may or may not have run")
        case .linkLost(let loss):
            return unreachable(loss.reason)
        case .error(let message):
            // Redis error replies start with an error code (the first word); these are the
            // ones a client can act on.
            if message.hasPrefix("WRONGTYPE") { return .wrongType(message) }
            if message.hasPrefix("NOGROUP") { return .noGroup(message) }
            // A master demoted in a failover: it refused the write, and Herald is moving its
            // links to the new master (Sentinel), so it is a moment's unavailability.
            if message.hasPrefix("READONLY") { return .redisUnavailable("Redis refused \(command) (\(message)): a failover is under way; nothing was done") }
            if message.contains("Invalid stream ID") || message.contains("ID specified in XADD") { return .badID(message) }
            return .redisError("Redis refused \(command): \(message)")
        default:
            return .redisError("Redis refused \(command): unexpected reply")
        }
    }

    /// A command `sender` did not send because its link is down: nothing was done.
    static func unreachable(_ sender: CommandSender) -> HTTPError {
        unreachable(sender.lastError)
    }

    private static func unreachable(_ reason: String) -> HTTPError {
        .redisUnavailable("Redis is unreachable (\(reason)); nothing was done")
    }

    /// Whether `reply` is Redis's refusal to create a consumer group that already exists
    /// (XGROUP CREATE), which a reader joining the group takes as success.
    static func isExistingGroup(_ reply: RedisReply) -> Bool {
        reply.errorMessage?.hasPrefix("BUSYGROUP") ?? false
    }
}
