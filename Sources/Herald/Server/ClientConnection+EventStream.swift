// A client connection whose answer became a Server-Sent Events stream: one-way (input is
// dropped in `process`), kept alive through proxies by heartbeat comments.

extension ClientConnection {
    /// Sends a heartbeat comment when the stream has been quiet for the heartbeat interval.
    func checkEventStreamTimers(_ es: EventStreamWire, now: Int64) {
        if now - es.heartbeatMs >= min(EventStreamWire.heartbeatMaxMs, context.config.pingIntervalMs) {
            es.heartbeatMs = now
            send(EventStream.heartbeat)
        }
    }

    /// Ends a session from Herald's side (its token expired): a WebSocket closes with `code`;
    /// an event stream, which has no close code, ends once what is queued is written.
    func end(code: UInt16, reason: String) {
        switch state {
        case .webSocket: closeWebSocket(code: code, reason: reason)
        case .eventStream:
            closeAfterFlush = true
            scheduleFlush()
        case .http: close()
        }
    }
}
