// A Redis reply as a Swift value, converted once from hiredis's `redisReply` tree, or the
// news that none will come because the link was lost.
import CHiredis

/// What a command's callback receives: Redis's reply, or `.linkLost` when no reply will come.
/// Not `indirect`: `.array` holds its elements in an array's buffer already, so no case needs a
/// box of its own (and an `.integer` answer to PUBLISH costs no allocation).
public enum RedisReply: Equatable, Sendable {
    case string([UInt8])
    case status(String)
    /// An error reply from Redis itself (`WRONGTYPE ...`, `NOGROUP ...`, `MOVED ...`).
    case error(String)
    case integer(Int)
    case null
    case array([RedisReply])
    /// Herald's link failed before Redis answered, or the command never reached a node; never
    /// something Redis said, whatever the text of `reason`.
    case linkLost(LinkLoss)

    /// Copies a hiredis reply (the caller frees it).
    init(_ reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            self = .string(Array(UnsafeRawBufferPointer(start: r.str, count: Int(r.len))))
        case REDIS_REPLY_STATUS:
            self = .status(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            self = .error(String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(r.elements))
            for i in 0..<Int(r.elements) {
                if let element = r.element[i] { items.append(RedisReply(element)) } else { items.append(.null) }
            }
            self = .array(items)
        default:
            self = .null
        }
    }

    public var integer: Int? {
        if case .integer(let n) = self { return n }
        return nil
    }

    public var bytes: [UInt8]? {
        switch self {
        case .string(let b): return b
        case .status(let s): return Array(s.utf8)
        default: return nil
        }
    }

    public var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The text of an error reply from Redis (nil for `.linkLost`, which is not Redis's word).
    public var errorMessage: String? {
        if case .error(let e) = self { return e }
        return nil
    }

    /// Why no reply came, when none did.
    public var linkLoss: LinkLoss? {
        if case .linkLost(let loss) = self { return loss }
        return nil
    }

    /// Redis refused the command, or no reply came: either way it did not do what was asked.
    public var isFailure: Bool {
        switch self {
        case .error, .linkLost: return true
        default: return false
        }
    }
}

/// Why a command got no reply, and whether it may have run regardless.
public struct LinkLoss: Equatable, Sendable {
    /// What went wrong, for logs and the client's message ("Redis closed the connection").
    public let reason: String
    /// False when the command was never handed to a socket: nothing was done, so it is safe to
    /// send again. True when it was (or may have been): Redis may or may not have run it.
    public let mayHaveRun: Bool

    public init(reason: String, mayHaveRun: Bool) {
        self.reason = reason
        self.mayHaveRun = mayHaveRun
    }

    /// The command was never sent (the link was down, or the node it must go to is not connected).
    public static func notSent(_ reason: String) -> LinkLoss { LinkLoss(reason: reason, mayHaveRun: false) }
}
