// One client socket: HTTP/1.1 first (keep-alive, pipelining answered in order), then WebSocket
// frames after an upgrade. It owns the socket's buffers and timers; what requests and messages
// mean is decided by the API layer through `Router` and `WebSocketApp`.
import Glibc

/// What runs on top of an upgraded connection (the subscriber session, the echo endpoint).
public protocol WebSocketApp: AnyObject {
    func received(_ message: WebSocketEvent)
    /// Everything queued to the client has been written (lossless senders resume here).
    func drained()
    /// The connection is gone (closed by either side); release everything.
    func closed()
}

/// A client connection; confined to its worker's loop.
public final class ClientConnection: IOHandler {
    let fd: Int32
    /// The worker outlives its connections (it owns them); `unowned(unsafe)` spares the
    /// reference counting of the many `worker.` accesses per request.
    unowned(unsafe) let worker: Worker
    private var inbound = ByteBuffer()
    private var outbound = OutboundQueue()
    private var parser: HTTPParser
    /// Answers in request order; a slot fills when its handler responds (maybe after Redis).
    private var slots: [ResponseSlot] = []
    public private(set) var isClosed = false
    /// Close once everything queued is written.
    private var closeAfterFlush = false
    private var readPaused = false
    private var writeInterest = false
    private var flushQueued = false
    /// Monotonic ms of the last byte from the client.
    private(set) var lastHeardMs: Int64
    /// Monotonic ms when the current, incomplete request head began arriving.
    private var headStartedMs: Int64?
    /// Monotonic ms since when the connection has had nothing to do (no request, no answer).
    private var idleSinceMs: Int64
    /// Whether any request was answered; a fresh connection gets only the header deadline.
    private var servedAny = false

    /// What the connection speaks now.
    public enum Wire { case http, webSocket, eventStream }
    public private(set) var wire = Wire.http
    /// Monotonic ms of the last Server-Sent Events heartbeat.
    private var heartbeatMs: Int64 = 0

    // Upgraded state, set by `upgrade` or `startEventStream`.
    private var app: WebSocketApp?
    private var decoder: FrameDecoder?
    private var assembler: MessageAssembler?
    /// Monotonic ms when Herald sent its close frame (waiting for the client's).
    private var closeSentMs: Int64?
    /// Monotonic ms of an unanswered server ping.
    private var pingSentMs: Int64?
    /// Deliveries dropped because this client's queue was full, not yet reported to it.
    private var droppedUnreported = 0
    /// Accepted beyond `--max-connections`: its first request is refused.
    var overLimit = false
    /// The outbound queue held more than `largeQueue` bytes since it was last empty: when it
    /// empties or the connection closes, the loop gives freed memory back to the kernel.
    private var heldLargeQueue = false
    private static let largeQueue = 1 << 20
    /// Monotonic ms when the connection half-closed after its last answer and began discarding
    /// what the client still sends (lingering close); nil otherwise.
    private var lingerSinceMs: Int64?
    /// Bytes discarded while lingering.
    private var lingerDiscarded = 0
    /// Longest a lingering close waits for the client to finish sending, ms.
    static let lingerMs: Int64 = 2000
    /// Most bytes a lingering close reads and drops before it gives up on the client.
    static let lingerMaxBytes = 4 << 20

    init(fd: Int32, worker: Worker) {
        self.fd = fd
        self.worker = worker
        parser = HTTPParser(maxHeaderBytes: worker.config.maxHeader, maxBodyBytes: worker.config.maxBody)
        lastHeardMs = Clock.nowMs()
        idleSinceMs = lastHeardMs
    }

    public var isWebSocket: Bool { wire == .webSocket }

    // MARK: Events

    public func handleEvents(_ events: UInt32) {
        if lingerSinceMs != nil {
            discardInput()
            return
        }
        if events & (IOEvents.readable | IOEvents.hangup) != 0 && !readPaused {
            readInput()
        } else if events & IOEvents.failed != 0 {
            // Reset or gone while not being read: nothing more can reach the client, and the
            // (level-triggered) event would otherwise fire every tick.
            close()
            return
        }
        if events & IOEvents.writable != 0 && !isClosed {
            flush()
        }
    }

    private func readInput() {
        var reads = 0
        while !isClosed && reads < 4 {
            reads += 1
            switch Socket.read(fd, into: worker.readScratch) {
            case .bytes(let n):
                lastHeardMs = Clock.nowMs()
                inbound.append(UnsafeRawBufferPointer(rebasing: worker.readScratch[0..<n]))
                if n < worker.readScratch.count { reads = .max }
            case .wouldBlock:
                reads = .max
            case .closed:
                peerClosed()
                return
            case .failed:
                close()
                return
            }
        }
        process()
    }

    /// End of stream from the client. A client that half-closes cannot be told from one that
    /// left, and answering the vanished is worse (a popped queue item would be lost), so the
    /// connection closes at once and pending answers are dropped; their handlers are told
    /// (`Responder.onAbandon`, `isAbandoned`).
    private func peerClosed() {
        close()
    }

    /// Looks at the socket now, out of turn, for a client that left (its end of stream may sit
    /// unread behind other events of this tick): before handing it something it cannot return,
    /// such as a popped queue item. Closes the connection if so.
    func checkPeer() {
        if !isClosed && Socket.peerHasClosed(fd) { peerClosed() }
    }

    /// Parses whatever is buffered, as HTTP or as WebSocket frames.
    func process() {
        switch wire {
        case .http: processRequests()
        case .webSocket: processFrames()
        case .eventStream: inbound = ByteBuffer()  // an event stream is one-way; input is ignored
        }
        // HTTP keeps a small buffer between requests (given back when the connection idles);
        // WebSocket and event-stream connections, mostly idle, keep none.
        inbound.reclaim(keeping: wire == .http ? 4096 : 0)
    }

    // MARK: HTTP

    private func processRequests() {
        while !isClosed && !closeAfterFlush && wire == .http {
            // Backpressure: a client that pipelines without reading its answers stops being read.
            if slots.count >= 64 || outbound.byteCount > worker.config.maxOutbound {
                setReading(false)
                return
            }
            let request: HTTPRequest
            do {
                guard let next = try parser.next(&inbound) else { break }
                request = next
            } catch {
                respondNow(.error(error), keepAlive: false)
                return
            }
            headStartedMs = nil
            worker.stats.requests.bump()
            let slot = ResponseSlot(keepAlive: request.keepAlive && !worker.isDraining && !overLimit, head: request.method == "HEAD")
            if worker.config.accessLog { slot.access = (request.method, request.target, Clock.nowMicros()) }
            if let origin = request.header("origin"), worker.router.access.allowsOrigin(of: request) { slot.corsOrigin = origin }
            slots.append(slot)
            worker.router.route(request, Responder(connection: self, slot: slot))
        }
        if wire != .http {
            process()
        } else if parser.isReadingHead && !inbound.isEmpty && headStartedMs == nil {
            headStartedMs = Clock.nowMs()
        }
        sendContinueIfDue()
    }

    /// Sends `100 Continue` for a request whose head was accepted with `Expect: 100-continue`
    /// and whose body is still to come (RFC 9110 §10.1.1), once every earlier answer is queued
    /// (an interim answer must not overtake them).
    private func sendContinueIfDue() {
        guard parser.wantsContinue, slots.isEmpty, !closeAfterFlush, !isClosed, wire == .http else { return }
        parser.continueSent()
        outbound.append(Chunk.of(HTTPResponse.continueHead))
        scheduleFlush()
    }

    private func respondNow(_ response: HTTPResponse, keepAlive: Bool) {
        let slot = ResponseSlot(keepAlive: keepAlive, head: false)
        slots.append(slot)
        fill(slot, response)
    }

    /// Called by `Responder`: stores the answer and sends every answer that is now in order.
    func fill(_ slot: ResponseSlot, _ response: HTTPResponse) {
        guard !isClosed, !slot.abandoned, slot.answer == nil else { return }
        slot.onAbandon = nil
        var response = response
        response.omitBody = slot.head
        slot.answer = response.chunk(keepAlive: slot.keepAlive, corsOrigin: slot.corsOrigin)
        logAccess(slot, status: response.status, bytes: response.body.count)
        while let first = slots.first, let answer = first.answer {
            slots.removeFirst()
            outbound.append(answer)
            if !first.keepAlive {
                closeAfterFlush = true
                let dropped = slots
                slots.removeAll()
                for slot in dropped { slot.abandon() }
                break
            }
        }
        if slots.isEmpty {
            servedAny = true
            idleSinceMs = Clock.nowMs()
            sendContinueIfDue()
        }
        scheduleFlush()
        if readPaused && !closeAfterFlush && slots.count < 64 { setReading(true) }
    }

    /// One access-log line for the request of `slot`, when `--access-log` is on.
    private func logAccess(_ slot: ResponseSlot, status: Int, bytes: Int) {
        guard let access = slot.access else { return }
        worker.logger.info("access", metadata: [
            "method": "\(access.method)", "target": "\(access.target)", "status": "\(status)",
            "bytes": "\(bytes)", "micros": "\(Clock.nowMicros() - access.started)",
        ])
    }

    /// Switches to WebSocket after the 101 answer. Only allowed when no earlier answer is pending.
    func upgrade(_ slot: ResponseSlot, response: HTTPResponse, app: WebSocketApp) -> Bool {
        guard slots.count == 1, slots.first === slot else { return false }
        slots.removeAll()
        logAccess(slot, status: 101, bytes: 0)
        outbound.append(response.chunk(keepAlive: true))
        self.app = app
        wire = .webSocket
        decoder = FrameDecoder(maxPayload: worker.config.maxMessage)
        assembler = MessageAssembler(maxMessage: worker.config.maxMessage)
        headStartedMs = nil
        worker.stats.httpConnections.bump(-1)
        worker.stats.webSocketConnections.bump()
        scheduleFlush()
        return true
    }

    /// Turns the answer to `slot` into a Server-Sent Events stream driven by `app`.
    func startEventStream(_ slot: ResponseSlot, app: WebSocketApp) -> Bool {
        guard slots.count == 1, slots.first === slot else { return false }
        slots.removeAll()
        logAccess(slot, status: 200, bytes: 0)
        var response = HTTPResponse(status: 200, headers: [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ])
        response.streaming = true
        outbound.append(response.chunk(keepAlive: true, corsOrigin: slot.corsOrigin))
        outbound.append(Chunk.of(EventStream.retry(3000)))
        self.app = app
        wire = .eventStream
        heartbeatMs = Clock.nowMs()
        headStartedMs = nil
        worker.stats.httpConnections.bump(-1)
        worker.stats.eventStreams.bump()
        scheduleFlush()
        return true
    }

    /// Sends a JSON message (an answer, a notice) in this connection's wire form.
    public func sendMessage(_ json: [UInt8]) {
        send(wire == .eventStream ? EventStream.event(data: json) : FrameEncoder.encode(.text, json))
    }

    /// Queues a pub/sub delivery in this connection's wire form (JSON envelope or raw).
    public func deliver(_ delivery: Delivery, raw: Bool) {
        if wire == .eventStream {
            deliver(raw ? delivery.rawEvent : delivery.jsonEvent)
        } else {
            deliver(raw ? delivery.rawFrame : delivery.jsonFrame)
        }
    }

    /// Sends a stream entry if it fits in the outbound queue; false (nothing sent) when it does
    /// not, so lossless readers can fall back and catch up later.
    public func sendEntry(_ entry: StreamEntry) -> Bool {
        let chunk = wire == .eventStream ? entry.event : entry.frame
        guard hasRoom(for: chunk.count) else { return false }
        send(chunk)
        return true
    }

    // MARK: WebSocket

    private func processFrames() {
        guard let decoder, var assembler = self.assembler else { return }
        defer { self.assembler = assembler }
        while !isClosed && !closeAfterFlush {
            // Backpressure: answers to the client's own frames (pongs, op answers) count against
            // its outbound limit too. A client that writes without reading stops being read, so
            // it can fill only its own bounded queue; reading resumes as the queue drains.
            if outbound.byteCount > worker.config.maxOutbound {
                setReading(false)
                return
            }
            do {
                guard let frame = try decoder.next(&inbound) else { return }
                guard let event = try assembler.receive(frame) else { continue }
                switch event {
                case .ping(let payload):
                    send(FrameEncoder.encode(.pong, payload))
                case .pong:
                    pingSentMs = nil
                case .close(let code, _):
                    if closeSentMs == nil {
                        send(code.map { FrameEncoder.close(code: $0) } ?? FrameEncoder.encode(.close, []))
                    }
                    closeAfterFlush = true
                    scheduleFlush()
                case .text, .binary:
                    if closeSentMs == nil { app?.received(event) }
                }
            } catch {
                failWebSocket(error)
                return
            }
        }
    }

    /// Sends a close frame with `code` for a protocol violation and drops the connection once
    /// it is written (RFC 6455 §7.1.7).
    private func failWebSocket(_ error: WebSocketError) {
        send(FrameEncoder.close(code: error.code, reason: error.reason))
        closeSentMs = Clock.nowMs()
        closeAfterFlush = true
        setReading(false)
        scheduleFlush()
    }

    /// Starts the closing handshake; the client's close frame (or a timeout) ends it.
    public func closeWebSocket(code: UInt16, reason: String = "") {
        guard isWebSocket, closeSentMs == nil, !isClosed else { return }
        send(FrameEncoder.close(code: code, reason: reason))
        closeSentMs = Clock.nowMs()
    }

    /// Queues a control answer or frame; never dropped.
    public func send(_ frame: [UInt8]) {
        guard !isClosed else { return }
        outbound.append(Chunk.of(frame))
        scheduleFlush()
    }

    /// Whether `bytes` more fit in this client's outbound queue (lossless senders check first).
    public func hasRoom(for bytes: Int) -> Bool {
        !isClosed && outbound.byteCount + bytes <= worker.config.maxOutbound
    }

    /// Queues a shared frame that must not be dropped (a stream entry the sender checked room for).
    public func send(_ frame: Chunk) {
        guard !isClosed else { return }
        outbound.append(frame)
        worker.deliveredCount += 1
        scheduleFlush()
    }

    /// Queues a shared delivery frame unless this client's queue is full, in which case the
    /// delivery is dropped and counted; the client hears how many once its queue drains.
    public func deliver(_ frame: Chunk) {
        guard !isClosed, closeSentMs == nil else { return }
        if outbound.byteCount + frame.count > worker.config.maxOutbound {
            worker.droppedCount += 1
            if worker.config.slowConsumerPolicy == .close {
                if wire == .eventStream { close() }
                closeWebSocket(code: CloseCode.policyViolation, reason: "too slow: the outbound queue is full")
            } else {
                droppedUnreported += 1
            }
            return
        }
        outbound.append(frame)
        worker.deliveredCount += 1
        scheduleFlush()
    }

    // MARK: Output

    private func scheduleFlush() {
        guard !flushQueued, !isClosed else { return }
        flushQueued = true
        worker.queueFlush(self)
    }

    /// Writes what is queued; called once per loop tick for every connection with output.
    func flush() {
        flushQueued = false
        guard !isClosed else { return }
        if outbound.byteCount > Self.largeQueue { heldLargeQueue = true }
        switch outbound.flush(to: fd) {
        case .failure:
            close()
        case .success(false):
            setWriteInterest(true)
            if readPaused && wire == .webSocket && !closeAfterFlush && outbound.byteCount <= worker.config.maxOutbound / 2 {
                setReading(true)
                process()
            }
        case .success(true):
            if heldLargeQueue {
                heldLargeQueue = false
                worker.trimMemorySoon()
            }
            setWriteInterest(false)
            if droppedUnreported > 0 && closeSentMs == nil {
                let count = droppedUnreported
                droppedUnreported = 0
                sendMessage(Envelope.dropped(count))
                return
            }
            if closeAfterFlush {
                closeGracefully()
                return
            }
            app?.drained()
            if readPaused && slots.count < 64 && !isClosed {
                setReading(true)
                process()
            }
        }
    }

    private func setReading(_ on: Bool) {
        guard readPaused == on, !isClosed else { return }
        readPaused = !on
        updateInterest()
    }

    private func setWriteInterest(_ on: Bool) {
        guard writeInterest != on, !isClosed else { return }
        writeInterest = on
        updateInterest()
    }

    private func updateInterest() {
        worker.loop.modify(fd: fd, events: (readPaused ? 0 : IOEvents.readable) | (writeInterest ? IOEvents.writable : 0))
    }

    // MARK: Timers and shutdown

    /// Called about once a second: header deadline, keep-alive idle limit, pings, dead peers.
    func checkTimers(now: Int64) {
        if let since = lingerSinceMs {
            if now - since >= Self.lingerMs { close() }
            return
        }
        guard !isClosed else { return }
        let config = worker.config
        if wire == .eventStream {
            if now - heartbeatMs >= min(15_000, config.pingIntervalMs) {
                heartbeatMs = now
                send(EventStream.heartbeat)
            }
            return
        }
        if isWebSocket {
            if let sent = closeSentMs {
                if now - sent > 2000 { close() }
                return
            }
            if now - lastHeardMs >= 2 * config.pingIntervalMs {
                close()
            } else if now - lastHeardMs >= config.pingIntervalMs && pingSentMs == nil {
                pingSentMs = now
                send(FrameEncoder.encode(.ping, []))
            }
            return
        }
        guard slots.isEmpty else { return }
        if closeAfterFlush {
            // The last answer is queued but the client does not read it: no longer than an idle
            // keep-alive connection would be kept.
            if now - idleSinceMs > config.keepAliveTimeoutMs { close() }
            return
        }
        if let started = headStartedMs {
            if now - started > config.headerTimeoutMs { respondNow(.error(.requestTimeout), keepAlive: false) }
        } else if inbound.isEmpty {
            if now - idleSinceMs > (servedAny ? config.keepAliveTimeoutMs : config.headerTimeoutMs) {
                close()
            } else if now - idleSinceMs > 1000 {
                inbound = ByteBuffer()  // idle for a second: give the kept read buffer back
            }
        }
    }

    /// Drain: WebSockets get 1001; idle HTTP connections close; busy ones close after answering.
    func beginDrain() {
        if wire == .eventStream {
            closeAfterFlush = true
            scheduleFlush()
        } else if isWebSocket {
            // The close frame goes before queued deliveries (at-most-once; stream readers resume
            // by id), so a slow client hears it at once and not after megabytes of backlog.
            outbound.dropUnstarted()
            closeWebSocket(code: CloseCode.goingAway, reason: "Herald is shutting down")
        } else if slots.isEmpty && !parser.isMidRequest(inbound) {
            // An answer filled this tick may still sit in the queue: write it, then close.
            closeAfterFlush = true
            if outbound.isEmpty { close() } else { scheduleFlush() }
        } else {
            // Answer what is in flight (or still arriving), then close.
            for slot in slots { slot.keepAlive = false }
        }
    }

    /// Closes the connection now (a lingering close included).
    public func close() {
        guard !isClosed || lingerSinceMs != nil else { return }
        if !isClosed { release() }
        lingerSinceMs = nil
        worker.loop.unregister(fd: fd)
        // Input left unread (a client Herald stopped reading) would make the kernel answer the
        // close with a reset, which can destroy the last answers still in flight to the client.
        if readPaused { Socket.discardInput(fd, scratch: worker.readScratch) }
        Socket.close(fd)
        if heldLargeQueue { worker.trimMemorySoon() }
        switch wire {
        case .http: worker.stats.httpConnections.bump(-1)
        case .webSocket: worker.stats.webSocketConnections.bump(-1)
        case .eventStream: worker.stats.eventStreams.bump(-1)
        }
        worker.remove(self)
    }

    /// Closes after the last answer is written without destroying it: closing a socket that
    /// still has unread input makes the kernel send RST, and a client that sends its whole body
    /// before reading (a refused upload: 413, 400, 431, 408) then gets ECONNRESET instead of the
    /// answer. So Herald shuts down writing (the client reads the answer, then end of stream),
    /// reads and drops what still arrives, and closes when the client closes, after `lingerMs`,
    /// or after `lingerMaxBytes` (nginx's lingering close; RFC 9112 §9.6). For the app the
    /// connection is closed from the start; it still counts as a connection until the socket is.
    private func closeGracefully() {
        guard !isClosed else { return }
        release()
        Socket.shutdownWrite(fd)
        lingerSinceMs = Clock.nowMs()
        lingerDiscarded = 0
        readPaused = false
        writeInterest = false
        worker.loop.modify(fd: fd, events: IOEvents.readable)
    }

    /// Reads and drops input while lingering; closes on end of stream, error or the byte cap.
    private func discardInput() {
        for _ in 0..<16 {
            switch Socket.read(fd, into: worker.readScratch) {
            case .bytes(let n):
                lingerDiscarded += n
                if lingerDiscarded > Self.lingerMaxBytes {
                    close()
                    return
                }
            case .wouldBlock:
                return
            case .closed, .failed:
                close()
                return
            }
        }
    }

    /// Marks the connection closed for everything above it and drops its state and its app.
    private func release() {
        isClosed = true
        let dropped = slots
        slots.removeAll()
        for slot in dropped { slot.abandon() }
        outbound = OutboundQueue()
        inbound = ByteBuffer()
        let app = self.app
        self.app = nil
        app?.closed()
    }
}

/// The place of one request's answer in its connection's order.
final class ResponseSlot {
    var keepAlive: Bool
    /// HEAD: the answer's body is not sent.
    let head: Bool
    /// The browser origin allowed to read this answer (CORS), if any.
    var corsOrigin: String?
    /// For the access log: the request and when it was parsed (monotonic µs).
    var access: (method: String, target: String, started: Int64)?
    /// The serialised answer, once the handler has responded.
    var answer: Chunk?
    /// The client will never read this answer: it left, or an earlier answer closed the
    /// connection before this one.
    private(set) var abandoned = false
    /// Told once if the slot is abandoned before it is answered (a waiting pop stops waiting).
    var onAbandon: (() -> Void)?

    init(keepAlive: Bool, head: Bool) {
        self.keepAlive = keepAlive
        self.head = head
    }

    func abandon() {
        guard !abandoned else { return }
        abandoned = true
        let told = onAbandon
        onAbandon = nil
        told?()
    }
}

/// Hands one request's answer back to its connection, now or after Redis replies.
public struct Responder {
    let connection: ClientConnection
    let slot: ResponseSlot

    public func respond(_ response: HTTPResponse) {
        connection.fill(slot, response)
    }

    public func fail(_ error: HTTPError) {
        if error.closesConnection { slot.keepAlive = false }
        respond(.error(error))
    }

    /// Whether the client will never read this answer: it left (looked for on the socket now),
    /// or the connection closes before this answer.
    public var isAbandoned: Bool {
        connection.checkPeer()
        return slot.abandoned
    }

    /// Runs `action` if the client goes before this request is answered (to stop work for it).
    public func onAbandon(_ action: @escaping () -> Void) {
        if slot.abandoned { action() } else { slot.onAbandon = action }
    }

    /// Completes a WebSocket upgrade; false when earlier pipelined answers are still pending.
    public func upgrade(_ response: HTTPResponse, to app: WebSocketApp) -> Bool {
        connection.upgrade(slot, response: response, app: app)
    }

    /// Answers with a Server-Sent Events stream driven by `app`.
    public func startEventStream(_ app: WebSocketApp) -> Bool {
        connection.startEventStream(slot, app: app)
    }

}
