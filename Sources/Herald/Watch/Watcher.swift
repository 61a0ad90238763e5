// What the watch registry needs of a local watcher (a WebSocket client or an event stream).

/// What a session's watches need of its client connection (declared here, implemented by the
/// connection, so Watch/ depends on nothing above it); confined to its loop.
protocol WatchClient: AnyObject {
    /// Whether `bytes` more fit in the client's outbound queue.
    func hasRoom(for bytes: Int) -> Bool
    /// A message many clients get, in the client's wire form encoded once for all of them.
    func sendMessage(_ message: SharedMessage)
    /// An answer or notice as JSON, in the client's wire form: never dropped.
    func sendMessage(_ json: [UInt8])
}

/// A local watcher of keys; confined to its loop.
protocol Watcher: AnyObject {
    /// False once the client is gone: a watch op finishing after that takes nothing.
    var isWatching: Bool { get }
    /// Whether `bytes` more fit in the client's queue now. A value that does not fit is not
    /// queued: the key is read again for the watcher once its queue drains (`WatchRegistry.drained`;
    /// a value is a state and only the latest matters), so a client that stops reading makes
    /// Herald hold no pile of values.
    func hasRoom(for bytes: Int) -> Bool
    /// Queues one message (a value, a deletion, a notice), encoded once for every watcher.
    func send(_ message: SharedMessage)
    /// The link to Redis for `pattern` was lost and is back: what the watcher holds for keys
    /// of the pattern is stale; fresh values follow, then `patternResynced`.
    func patternLost(_ pattern: [UInt8])
    /// Every fresh value of `pattern`'s keys was queued.
    func patternResynced(_ pattern: [UInt8])
}
