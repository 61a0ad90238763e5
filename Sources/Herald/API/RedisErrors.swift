// How a Redis reply that is not the expected one becomes an HTTP error, in one place.

enum RedisErrors {
    /// Maps an error (or unexpected) reply of `command` to the error the client sees.
    static func httpError(_ reply: RedisReply, command: String) -> HTTPError {
        let message = reply.errorMessage ?? "unexpected reply"
        if message.hasPrefix("HERALD_LINK_DOWN") {
            return .redisUnavailable("the Redis connection was lost before Redis answered \(command); it may or may not have run")
        }
        if message.hasPrefix("WRONGTYPE") {
            return HTTPError(status: 409, code: "wrong_type", message: "the key holds another kind of value: \(message)")
        }
        if message.hasPrefix("NOGROUP") {
            return HTTPError(status: 404, code: "no_group", message: message)
        }
        if message.contains("Invalid stream ID") || message.contains("ID specified in XADD") {
            return HTTPError(status: 400, code: "bad_id", message: message)
        }
        return HTTPError(status: 502, code: "redis_error", message: "Redis refused \(command): \(message)")
    }

    static func unreachable(_ sender: CommandSender) -> HTTPError {
        .redisUnavailable("Redis is unreachable (\(sender.lastError)); nothing was done")
    }
}
