// The closing handshake and keep-alive pings of one WebSocket connection (RFC 6455 §5.5,
// §7.1), as pure state transitions: the connection tells it what arrived and what time it is,
// and it says what to send or whether to drop the connection. No socket, no clock of its own.

/// Close and ping state of one WebSocket connection; a value owned by its connection.
public struct WebSocketControl: Sendable {
    /// Longest Herald waits for the client's close frame after sending its own, ms: a client
    /// that never answers (or never reads) cannot keep its connection and buffers alive.
    public static let closeWaitMs: Int64 = 2000
    /// Ping intervals of silence after which the client counts as gone: one interval earns a
    /// ping, the next one without any byte from the client (not even the pong) drops it.
    public static let silentIntervalsBeforeDrop: Int64 = 2

    /// How often a silent client is pinged, ms (`--ping-interval`).
    public let pingIntervalMs: Int64
    /// Monotonic ms when Herald sent its close frame (waiting for the client's); nil before.
    public private(set) var closeSentMs: Int64?
    /// Monotonic ms of the server ping not yet answered by a pong; nil when none is out.
    public private(set) var pingSentMs: Int64?

    public init(pingIntervalMs: Int64) {
        self.pingIntervalMs = pingIntervalMs
    }

    /// Whether Herald has sent its close frame: from then on it sends no data and hands no
    /// message to the app (RFC 6455 §5.5.1).
    public var closeSent: Bool { closeSentMs != nil }

    /// Herald sends a close frame (shutting down, refusing, a protocol error, a slow client).
    /// False when one was sent already: a second close frame must not be sent.
    public mutating func sendClose(now: Int64) -> Bool {
        guard closeSentMs == nil else { return false }
        closeSentMs = now
        return true
    }

    /// Herald sends a close frame for a protocol error (RFC 6455 §7.1.7): always sent, even
    /// after an earlier close frame, and the wait for the client's starts again.
    public mutating func failed(now: Int64) {
        closeSentMs = now
    }

    /// The client's close frame arrived. True when Herald must answer it with a close frame of
    /// its own (it has not sent one yet); either way the connection closes once what is queued
    /// is written (RFC 6455 §5.5.1).
    public func answersClose() -> Bool {
        closeSentMs == nil
    }

    /// A pong arrived: the outstanding ping, if any, is answered.
    public mutating func receivedPong() {
        pingSentMs = nil
    }

    /// What the timer asks of the connection.
    public enum Step: Equatable, Sendable {
        /// Nothing to do now.
        case wait
        /// Send a ping (the client has been silent for an interval).
        case sendPing
        /// Close the socket now: the client did not answer the close frame in time, or has been
        /// silent for `silentIntervalsBeforeDrop` intervals.
        case drop
    }

    /// Called about once a second with the time of the last byte from the client.
    public mutating func tick(now: Int64, lastHeardMs: Int64) -> Step {
        if let sent = closeSentMs {
            return now - sent > Self.closeWaitMs ? .drop : .wait
        }
        let silent = now - lastHeardMs
        if silent >= Self.silentIntervalsBeforeDrop * pingIntervalMs { return .drop }
        if silent >= pingIntervalMs && pingSentMs == nil {
            pingSentMs = now
            return .sendPing
        }
        return .wait
    }
}
