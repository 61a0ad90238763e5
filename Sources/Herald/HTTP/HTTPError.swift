// Every error Herald answers over HTTP, with its status and machine-readable code, in one place.

/// An error answered as `status` with the JSON body `{"error":code,"message":message}`.
public struct HTTPError: Error, Equatable, Sendable {
    public let status: Int
    public let code: String
    public let message: String
    /// Whether the connection must close after the answer (the stream can't be resynchronised).
    public let closesConnection: Bool
    /// Headers the status calls for (`Allow` with 405, `Sec-WebSocket-Version` with 426).
    public let headers: [String: String]

    /// Private: every error code has a named constructor below, so each status, code and
    /// message is written once.
    private init(status: Int, code: String, message: String, closesConnection: Bool = false, headers: [String: String] = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.closesConnection = closesConnection
        self.headers = headers
    }

    public static func badRequest(_ message: String) -> HTTPError {
        HTTPError(status: 400, code: "bad_request", message: message)
    }
    /// A request we could not frame: nothing after it on the connection can be trusted.
    public static func malformed(_ message: String) -> HTTPError {
        HTTPError(status: 400, code: "bad_request", message: message, closesConnection: true)
    }
    public static func notFound(_ message: String) -> HTTPError {
        HTTPError(status: 404, code: "not_found", message: message)
    }
    public static func methodNotAllowed(_ method: String, allowed: [String]) -> HTTPError {
        HTTPError(
            status: 405, code: "method_not_allowed",
            message: "\(method) is not allowed here; use \(allowed.joined(separator: ", "))",
            headers: ["Allow": allowed.joined(separator: ", ")])
    }
    public static let requestTimeout = HTTPError(
        status: 408, code: "request_timeout",
        message: "the request header did not arrive in time", closesConnection: true)
    public static func payloadTooLarge(limit: Int) -> HTTPError {
        HTTPError(
            status: 413, code: "payload_too_large",
            message: "the request body exceeds \(limit) bytes", closesConnection: true)
    }
    /// An `Expect` other than 100-continue (RFC 9110 §10.1.1); the body may still be coming.
    public static func expectationFailed(_ expectation: String) -> HTTPError {
        HTTPError(
            status: 417, code: "expectation_failed",
            message: "only Expect: 100-continue is understood, not \(expectation)", closesConnection: true)
    }
    public static func headersTooLarge(limit: Int) -> HTTPError {
        HTTPError(
            status: 431, code: "headers_too_large",
            message: "the request header block exceeds \(limit) bytes", closesConnection: true)
    }
    public static func upgradeRequired(_ message: String) -> HTTPError {
        HTTPError(
            status: 426, code: "upgrade_required", message: message,
            headers: ["Sec-WebSocket-Version": "13", "Upgrade": "websocket"])
    }
    public static func notImplemented(_ message: String) -> HTTPError {
        HTTPError(status: 501, code: "not_implemented", message: message, closesConnection: true)
    }
    public static let versionNotSupported = HTTPError(
        status: 505, code: "http_version_not_supported",
        message: "only HTTP/1.0 and HTTP/1.1 are served", closesConnection: true)
    public static func redisUnavailable(_ message: String) -> HTTPError {
        HTTPError(status: 503, code: "redis_unavailable", message: message)
    }
    /// Too much already waits on Redis (the loop's `--max-pending`, or one WebSocket's ops).
    public static func overloaded(_ message: String) -> HTTPError {
        HTTPError(status: 503, code: "overloaded", message: message, headers: ["Retry-After": "1"])
    }
    /// A page whose Origin may not use Herald (`AccessPolicy.allows(origin:host:)`).
    public static let originNotAllowed = HTTPError(
        status: 403, code: "forbidden",
        message: "pages of this origin may not call Herald; list it in --allowed-origins")
    /// A queue pop a page made without CORS (a link, an image): a cross-site state change.
    public static let noCORSPop = HTTPError(
        status: 403, code: "forbidden",
        message: "a page of another origin may pop only with a CORS request (fetch), not a link, image or form")
    /// A client named a key in Herald's own space (`InternalKeys`): refused whatever its grant.
    public static func reservedName(_ name: String) -> HTTPError {
        HTTPError(
            status: 403, code: "reserved_name",
            message: "'\(name)' is reserved: keys starting with '\(InternalKeys.prefix)' are Herald's own")
    }
    /// A waiting pop cut short because Herald is shutting down (the drain's time is up).
    public static let shuttingDown = HTTPError(
        status: 503, code: "shutting_down",
        message: "Herald is shutting down; the wait ended with no item: retry (another instance will serve it)",
        closesConnection: true)
    public static func tooManyWaiters(capacity: Int) -> HTTPError {
        HTTPError(
            status: 503, code: "too_many_waiters",
            message: "all \(capacity) blocking Redis connections of this loop are waiting; retry later or use wait=0")
    }
    public static func tooManySubscriptions(limit: Int) -> HTTPError {
        HTTPError(status: 400, code: "too_many_subscriptions", message: "at most \(limit) subscriptions per connection")
    }
    /// Redis does not send the keyspace notifications a watch needs (`notify-keyspace-events`);
    /// the message names the setting.
    public static func watchUnavailable(_ message: String) -> HTTPError {
        HTTPError(status: 503, code: "watch_unavailable", message: message)
    }
    /// A watch pattern that matches everything, or more keys than `--max-watch-keys`.
    public static func watchTooBroad(_ message: String) -> HTTPError {
        HTTPError(status: 400, code: "watch_too_broad", message: message)
    }
    /// No credential, or one Herald does not accept (`AccessPolicy`).
    public static func unauthorized(_ message: String) -> HTTPError {
        HTTPError(status: 401, code: "unauthorized", message: message, headers: ["WWW-Authenticate": "Bearer"])
    }
    /// A token past its `exp`: refused by the `refresh` op, and told to a long-lived
    /// connection whose token ran out before it is closed.
    public static let tokenExpired = HTTPError(
        status: 401, code: "token_expired", message: "the token has expired", headers: ["WWW-Authenticate": "Bearer"])
    /// A `refresh` op's token issued to another subject (`sub`) than the connection's, which
    /// is `expected` (its JSON text; nil: none).
    public static func wrongSubject(expected: String?) -> HTTPError {
        HTTPError(
            status: 403, code: "wrong_subject",
            message: "the new token must have the connection's subject (sub: \(expected ?? "none"))")
    }
    /// A valid credential whose grant does not cover `what` ("publishing to news").
    public static func forbidden(_ what: String) -> HTTPError {
        HTTPError(status: 403, code: "forbidden", message: "this credential does not allow \(what)")
    }
    /// The backend's hook (`--hook-url`) answered 401 or 403 for `what`.
    public static func refusedByHook(_ what: String) -> HTTPError {
        HTTPError(status: 403, code: "forbidden", message: "the backend does not allow \(what)")
    }
    /// The backend's hook gave no usable answer: refused, as hooks fail closed.
    public static func hookUnavailable(_ reason: String) -> HTTPError {
        HTTPError(status: 503, code: "hook_unavailable", message: "the authorization hook did not answer: \(reason)", headers: ["Retry-After": "1"])
    }
    /// An `Idempotency-Key` (or an op's `idempotency_key`) that is not 1-128 printable characters.
    public static func badIdempotencyKey(_ message: String) -> HTTPError {
        HTTPError(status: 400, code: "bad_idempotency_key", message: message)
    }
    /// The idempotency key was used before for a different request.
    public static let idempotencyKeyReused = HTTPError(
        status: 422, code: "idempotency_key_reused",
        message: "this Idempotency-Key was used for a different request; use a new key for a new request")
    /// A stream id (or time) that is not one: the client's own text, or Redis's refusal of it.
    public static func badID(_ message: String) -> HTTPError {
        HTTPError(status: 400, code: "bad_id", message: message)
    }
    /// Redis's WRONGTYPE: the key holds another kind of value than the command works on.
    public static func wrongType(_ redisMessage: String) -> HTTPError {
        HTTPError(status: 409, code: "wrong_type", message: "the key holds another kind of value: \(redisMessage)")
    }
    /// Redis's NOGROUP: the consumer group (or its stream) does not exist.
    public static func noGroup(_ redisMessage: String) -> HTTPError {
        HTTPError(status: 404, code: "no_group", message: redisMessage)
    }
    /// Redis refused the command (or answered something Herald did not expect).
    public static func redisError(_ message: String) -> HTTPError {
        HTTPError(status: 502, code: "redis_error", message: message)
    }
    /// A write asked for `replicas=N` that fewer replicas acknowledged within the timeout: the
    /// primary has it, a failover may or may not keep it.
    public static func notReplicated(asked: Int, acknowledged: Int, timeoutMs: Int) -> HTTPError {
        HTTPError(
            status: 504, code: "not_replicated",
            message: "the write was done on the primary, but \(acknowledged) of the \(asked) replicas asked for acknowledged it "
                + "within \(timeoutMs) ms: it may or may not survive a failover")
    }
    /// The loop holds `--max-connections`: the connection is answered and closed.
    public static func tooManyConnections(limit: Int) -> HTTPError {
        HTTPError(
            status: 503, code: "too_many_connections", message: "Herald holds its limit of \(limit) connections",
            closesConnection: true, headers: ["Retry-After": "1"])
    }
}
