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
}
