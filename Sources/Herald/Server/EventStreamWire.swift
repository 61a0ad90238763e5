// The state of a connection whose answer became a Server-Sent Events stream: one-way, so only
// the app, its heartbeat clock and its count of dropped deliveries.

/// Server-Sent Events state of one client connection; confined to its loop.
final class EventStreamWire {
    /// Longest gap between heartbeat comments, ms (or the ping interval, if shorter): proxies
    /// and load balancers close streams that stay silent for about 30-60 s.
    static let heartbeatMaxMs: Int64 = 15_000
    /// The reconnection delay the stream asks browsers to wait, ms (`retry:`): a restarting
    /// Herald is not hammered by every EventSource at once.
    static let retryMs = 3000

    /// Runs on the connection; nil once the connection closed (which breaks the app's
    /// reference back to its connection).
    var app: SessionApp?
    /// Monotonic ms of the last heartbeat (or of the stream's start).
    var heartbeatMs: Int64
    /// Deliveries dropped because this client's queue was full, not yet reported to it.
    var droppedUnreported = 0

    init(app: SessionApp, now: Int64) {
        self.app = app
        heartbeatMs = now
    }
}
