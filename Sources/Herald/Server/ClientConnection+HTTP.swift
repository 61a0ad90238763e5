// A client connection while it speaks HTTP/1.1: requests parsed and routed in order, answers
// sent in request order (pipelining), 100 Continue, the header and keep-alive deadlines, and
// the two ways out of HTTP (a WebSocket upgrade, an event stream).

extension ClientConnection {
    func processRequests(_ http: HTTPWire) {
        while !isClosed && !closeAfterFlush && wire == .http {
            // Backpressure: a client that pipelines without reading its answers stops being read.
            if http.slots.count >= HTTPWire.maxPipelined || outbound.byteCount > context.config.maxOutbound {
                setReading(false)
                return
            }
            let request: HTTPRequest
            do {
                guard let next = try http.parser.next(&inbound) else { break }
                request = next
            } catch {
                respondNow(http, .error(error), keepAlive: false)
                return
            }
            http.headStartedMs = nil
            context.stats.requests.bump()
            let slot = ResponseSlot(keepAlive: request.keepAlive && !context.isDraining && !overLimit, head: request.method == "HEAD")
            if context.config.accessLog { slot.access = (request.method, request.target, Clock.nowMicros()) }
            if let origin = request.header("origin"), context.router.access.allowsOrigin(of: request) { slot.corsOrigin = origin }
            http.slots.append(slot)
            context.router.route(request, Responder(connection: self, slot: slot))
        }
        if wire != .http {
            process()
        } else if http.parser.isReadingHead && !inbound.isEmpty && http.headStartedMs == nil {
            http.headStartedMs = Clock.nowMs()
        }
        sendContinueIfDue(http)
    }

    /// Sends `100 Continue` for a request whose head was accepted with `Expect: 100-continue`
    /// and whose body is still to come (RFC 9110 §10.1.1), once every earlier answer is queued
    /// (an interim answer must not overtake them).
    private func sendContinueIfDue(_ http: HTTPWire) {
        guard http.parser.wantsContinue, http.slots.isEmpty, !closeAfterFlush, !isClosed, wire == .http else { return }
        http.parser.continueSent()
        outbound.append(Chunk.of(HTTPResponse.continueHead))
        scheduleFlush()
    }

    private func respondNow(_ http: HTTPWire, _ response: HTTPResponse, keepAlive: Bool) {
        let slot = ResponseSlot(keepAlive: keepAlive, head: false)
        http.slots.append(slot)
        fill(slot, response)
    }

    /// Called by `Responder`: stores the answer and sends every answer that is now in order.
    func fill(_ slot: ResponseSlot, _ response: HTTPResponse) {
        guard !isClosed, !slot.abandoned, slot.answer == nil, case .http(let http) = state else { return }
        slot.onAbandon = nil
        var response = response
        response.omitBody = slot.head
        slot.answer = response.chunk(keepAlive: slot.keepAlive, corsOrigin: slot.corsOrigin)
        logAccess(slot, status: response.status, bytes: response.body.count)
        while let first = http.slots.first, let answer = first.answer {
            http.slots.removeFirst()
            outbound.append(answer)
            if !first.keepAlive {
                closeAfterFlush = true
                let dropped = http.slots
                http.slots.removeAll()
                for slot in dropped { slot.abandon() }
                break
            }
        }
        if http.slots.isEmpty {
            http.servedAny = true
            http.idleSinceMs = Clock.nowMs()
            sendContinueIfDue(http)
        }
        scheduleFlush()
        if readPaused && !closeAfterFlush && http.slots.count < HTTPWire.maxPipelined { setReading(true) }
    }

    /// One access-log line for the request of `slot`, when `--access-log` is on.
    private func logAccess(_ slot: ResponseSlot, status: Int, bytes: Int) {
        guard let access = slot.access else { return }
        context.logger.info(
            "access",
            metadata: [
                "method": "\(access.method)", "target": "\(access.target)", "status": "\(status)",
                "bytes": "\(bytes)", "micros": "\(Clock.nowMicros() - access.started)",
            ])
    }

    /// Switches to WebSocket after the 101 answer. Only allowed when no earlier answer is pending.
    func upgrade(_ slot: ResponseSlot, response: HTTPResponse, app: SessionApp) -> Bool {
        guard case .http(let http) = state, http.slots.count == 1, http.slots.first === slot else { return false }
        http.slots.removeAll()
        logAccess(slot, status: 101, bytes: 0)
        var response = response
        let deflate = context.config.compression ? response.deflateOffer : nil
        if let deflate { response.headers.append(("Sec-WebSocket-Extensions", deflate.responseValue)) }
        outbound.append(response.chunk(keepAlive: true))
        state = .webSocket(
            WebSocketWire(
                app: app, maxMessage: context.config.maxMessage, pingIntervalMs: context.config.pingIntervalMs, deflate: deflate,
                sharedInflater: context.sharedInflater))
        context.stats.httpConnections.bump(-1)
        context.stats.webSocketConnections.bump()
        if deflate != nil { context.stats.compressedConnections.bump() }
        scheduleFlush()
        return true
    }

    /// Turns the answer to `slot` into a Server-Sent Events stream driven by `app`.
    func startEventStream(_ slot: ResponseSlot, app: SessionApp) -> Bool {
        guard case .http(let http) = state, http.slots.count == 1, http.slots.first === slot else { return false }
        http.slots.removeAll()
        logAccess(slot, status: 200, bytes: 0)
        var response = HTTPResponse(
            status: 200,
            headers: [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache"),
                ("X-Accel-Buffering", "no"),
            ])
        response.streaming = true
        outbound.append(response.chunk(keepAlive: true, corsOrigin: slot.corsOrigin))
        outbound.append(Chunk.of(EventStream.retry(EventStreamWire.retryMs)))
        state = .eventStream(EventStreamWire(app: app, now: Clock.nowMs()))
        context.stats.httpConnections.bump(-1)
        context.stats.eventStreams.bump()
        scheduleFlush()
        return true
    }

    /// The header deadline, the keep-alive idle limit, and giving an idle read buffer back.
    func checkHTTPTimers(_ http: HTTPWire, now: Int64) {
        guard http.slots.isEmpty else { return }
        let config = context.config
        if closeAfterFlush {
            // The last answer is queued but the client does not read it: no longer than an idle
            // keep-alive connection would be kept.
            if now - http.idleSinceMs > config.keepAliveTimeoutMs { close() }
            return
        }
        if let started = http.headStartedMs {
            if now - started > config.headerTimeoutMs { respondNow(http, .error(.requestTimeout), keepAlive: false) }
        } else if inbound.isEmpty {
            if now - http.idleSinceMs > (http.servedAny ? config.keepAliveTimeoutMs : config.headerTimeoutMs) {
                close()
            } else if now - http.idleSinceMs > HTTPWire.idleBufferReleaseMs {
                inbound = ByteBuffer()
            }
        }
    }

    /// Drain: an idle connection closes (after writing an answer still queued); a busy one
    /// answers what is in flight (or still arriving), then closes.
    func drainHTTP(_ http: HTTPWire) {
        if http.slots.isEmpty && !http.parser.isMidRequest(inbound) {
            // An answer filled this tick may still sit in the queue: write it, then close.
            closeAfterFlush = true
            if outbound.isEmpty { close() } else { scheduleFlush() }
        } else {
            for slot in http.slots { slot.keepAlive = false }
        }
    }
}
