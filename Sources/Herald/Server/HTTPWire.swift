// The state of a connection while it speaks HTTP/1.1: its parser, the answers it owes in
// request order, and the clocks of its header and keep-alive deadlines. What it does with
// them is in `ClientConnection+HTTP.swift`.

/// HTTP/1.1 state of one client connection; confined to its loop.
final class HTTPWire {
    /// Requests read but not yet answered before the connection stops reading: HTTP/1.1
    /// pipelining answers in order, so a client that pipelines without reading its answers
    /// would otherwise make Herald hold any number of requests and answers for it.
    static let maxPipelined = 64
    /// Bytes of read buffer kept between requests, so a keep-alive client's next request needs
    /// no new allocation; given back after `idleBufferReleaseMs` of quiet.
    static let keptReadBufferBytes = 4096
    /// Quiet time after which an idle keep-alive connection gives its read buffer back, ms:
    /// thousands of idle connections should not each hold one.
    static let idleBufferReleaseMs: Int64 = 1000

    var parser: HTTPParser
    /// Answers in request order; a slot fills when its handler responds (maybe after Redis).
    var slots: [ResponseSlot] = []
    /// Monotonic ms when the current, incomplete request head began arriving.
    var headStartedMs: Int64?
    /// Monotonic ms since when the connection has had nothing to do (no request, no answer).
    var idleSinceMs: Int64
    /// Whether any request was answered; a fresh connection gets only the header deadline.
    var servedAny = false

    init(parser: HTTPParser, now: Int64) {
        self.parser = parser
        idleSinceMs = now
    }
}
