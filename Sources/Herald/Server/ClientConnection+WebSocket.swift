// A client connection after its WebSocket upgrade: frames decoded and assembled into
// messages for the app, pings answered, and the closing handshake and keep-alive pings driven
// by `WebSocketControl`.

extension ClientConnection {
    func processFrames(_ ws: WebSocketWire) {
        while !isClosed && !closeAfterFlush {
            // Backpressure: answers to the client's own frames (pongs, op answers) count against
            // its outbound limit too. A client that writes without reading stops being read, so
            // it can fill only its own bounded queue; reading resumes as the queue drains.
            if outbound.byteCount > context.config.maxOutbound {
                setReading(false)
                return
            }
            do {
                guard let frame = try ws.decoder.next(&inbound) else { return }
                guard let event = try ws.assembler.receive(frame) else { continue }
                switch event {
                case .ping(let payload):
                    send(FrameEncoder.encode(.pong, payload))
                case .pong:
                    ws.control.receivedPong()
                case .close(let code, _):
                    if ws.control.answersClose() {
                        send(code.map { FrameEncoder.close(code: $0) } ?? FrameEncoder.encode(.close, []))
                    }
                    closeAfterFlush = true
                    scheduleFlush()
                case .text, .binary:
                    if !ws.control.closeSent { ws.app?.received(event) }
                }
            } catch {
                failWebSocket(ws, error)
                return
            }
        }
    }

    /// Sends a close frame with `code` for a protocol violation and drops the connection once
    /// it is written (RFC 6455 §7.1.7).
    private func failWebSocket(_ ws: WebSocketWire, _ error: WebSocketError) {
        send(FrameEncoder.close(code: error.code, reason: error.reason))
        ws.control.failed(now: Clock.nowMs())
        closeAfterFlush = true
        setReading(false)
        scheduleFlush()
    }

    /// Starts the closing handshake; the client's close frame (or `WebSocketControl.closeWaitMs`)
    /// ends it. Does nothing on other wires or once a close frame was sent.
    public func closeWebSocket(code: UInt16, reason: String = "") {
        guard !isClosed, case .webSocket(let ws) = state, ws.control.sendClose(now: Clock.nowMs()) else { return }
        send(FrameEncoder.close(code: code, reason: reason))
    }

    /// Pings a silent client, drops one silent for too long or one that does not answer
    /// Herald's close frame.
    func checkWebSocketTimers(_ ws: WebSocketWire, now: Int64) {
        switch ws.control.tick(now: now, lastHeardMs: lastHeardMs) {
        case .wait: break
        case .sendPing: send(FrameEncoder.encode(.ping, []))
        case .drop: close()
        }
    }

    /// Drain: the 1001 close frame goes before queued deliveries (at-most-once; stream readers
    /// resume by id), so a slow client hears it at once and not after megabytes of backlog.
    func drainWebSocket() {
        outbound.dropUnstarted()
        closeWebSocket(code: CloseCode.goingAway, reason: "Herald is shutting down")
    }
}
