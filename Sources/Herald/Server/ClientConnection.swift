// One client socket: buffers, outbound queue, epoll interest, read pausing, flushing, closing
// (lingering close included) and timers. What it speaks is a `WireState`: HTTP/1.1 first, then
// WebSocket frames or a Server-Sent Events stream (ClientConnection+HTTP, +WebSocket,
// +EventStream); output goes through the entry points in ClientConnection+Output.
import Glibc

/// A client connection; confined to its context's loop.
public final class ClientConnection: IOHandler, ClientExchange {
    /// Reads per readable event before the loop moves on: one client that sends fast cannot
    /// starve the others on its loop.
    static let readsPerWake = 4
    /// Outbound bytes above which the connection, once its queue empties or it closes, asks
    /// the loop to give freed memory back to the kernel (malloc keeps large freed queues).
    static let largeQueue = 1 << 20
    /// Longest a lingering close waits for the client to finish sending, ms: a client that
    /// never stops sending cannot hold the socket.
    static let lingerMs: Int64 = 2000
    /// Most bytes a lingering close reads and drops before it gives up on the client.
    static let lingerMaxBytes = 4 << 20
    /// Reads per readable event while lingering: dropping a client's input is no reason to
    /// starve the others on the loop.
    static let lingerReadsPerWake = 16

    let fd: Int32
    /// The context outlives its connections (it owns them); `unowned(unsafe)` spares the
    /// reference counting of the many `context.` accesses per request.
    unowned(unsafe) let context: LoopContext
    var inbound = ByteBuffer()
    var outbound = OutboundQueue()
    /// What the connection speaks, with that protocol's state.
    var state: WireState
    public private(set) var isClosed = false
    /// Close once everything queued is written.
    var closeAfterFlush = false
    /// Reading is paused (backpressure): the client is not read until its queue drains.
    private(set) var readPaused = false
    private var writeInterest = false
    private var flushQueued = false
    /// Monotonic ms of the last byte from the client.
    private(set) var lastHeardMs: Int64
    /// Accepted beyond `--max-connections`: its first request is refused.
    var overLimit = false
    /// The outbound queue held more than `largeQueue` bytes since it was last empty: when it
    /// empties or the connection closes, the loop gives freed memory back to the kernel.
    private var heldLargeQueue = false
    /// Monotonic ms when the connection half-closed after its last answer and began discarding
    /// what the client still sends (lingering close); nil otherwise.
    private var lingerSinceMs: Int64?
    /// Bytes discarded while lingering.
    private var lingerDiscarded = 0

    init(fd: Int32, context: LoopContext) {
        self.fd = fd
        self.context = context
        lastHeardMs = Clock.nowMs()
        state = .http(
            HTTPWire(
                parser: HTTPParser(maxHeaderBytes: context.config.maxHeader, maxBodyBytes: context.config.maxBody),
                now: lastHeardMs))
    }

    /// What the connection speaks now.
    public enum Wire { case http, webSocket, eventStream }
    public var wire: Wire { state.kind }

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
        while !isClosed && reads < Self.readsPerWake {
            reads += 1
            switch Socket.read(fd, into: context.readScratch) {
            case .bytes(let n):
                lastHeardMs = Clock.nowMs()
                inbound.append(UnsafeRawBufferPointer(rebasing: context.readScratch[0..<n]))
                if n < context.readScratch.count { reads = .max }
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
    /// The peer's address, read from the socket when asked (only the hook asks).
    var remoteAddress: String { Socket.peerAddress(fd) }

    func checkPeer() {
        if !isClosed && Socket.peerHasClosed(fd) { peerClosed() }
    }

    /// Parses whatever is buffered, as HTTP or as WebSocket frames.
    func process() {
        switch state {
        case .http(let http): processRequests(http)
        case .webSocket(let ws): processFrames(ws)
        case .eventStream: inbound = ByteBuffer()  // an event stream is one-way; input is ignored
        }
        // HTTP keeps a small buffer between requests (given back when the connection idles);
        // WebSocket and event-stream connections, mostly idle, keep none.
        inbound.reclaim(keeping: wire == .http ? HTTPWire.keptReadBufferBytes : 0)
    }

    // MARK: Output

    func scheduleFlush() {
        guard !flushQueued, !isClosed else { return }
        flushQueued = true
        context.queueFlush(self)
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
            // A WebSocket client paused for its full queue is read again once half of it is
            // written, not only when all is (it may be waiting for its answers to send more).
            if readPaused && wire == .webSocket && !closeAfterFlush && outbound.byteCount <= context.config.maxOutbound / 2 {
                setReading(true)
                process()
            }
        case .success(true):
            if heldLargeQueue {
                heldLargeQueue = false
                context.trimMemorySoon()
            }
            setWriteInterest(false)
            let dropped = state.takeDroppedReport()
            if dropped > 0 {
                sendMessage(Envelope.dropped(dropped))
                return
            }
            if closeAfterFlush {
                closeGracefully()
                return
            }
            state.app?.drained()
            if readPaused && !isClosed && mayResumeReading {
                setReading(true)
                process()
            }
        }
    }

    /// Whether the wire allows reading again once the queue is empty (HTTP: while fewer than
    /// `maxPipelined` answers are owed).
    private var mayResumeReading: Bool {
        if case .http(let http) = state { return http.slots.count < HTTPWire.maxPipelined }
        return true
    }

    func setReading(_ on: Bool) {
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
        context.loop.modify(fd: fd, events: (readPaused ? 0 : IOEvents.readable) | (writeInterest ? IOEvents.writable : 0))
    }

    // MARK: Timers and shutdown

    /// Called about once a second: header deadline, keep-alive idle limit, pings, dead peers.
    func checkTimers(now: Int64) {
        if let since = lingerSinceMs {
            if now - since >= Self.lingerMs { close() }
            return
        }
        guard !isClosed else { return }
        switch state {
        case .http(let http): checkHTTPTimers(http, now: now)
        case .webSocket(let ws): checkWebSocketTimers(ws, now: now)
        case .eventStream(let es): checkEventStreamTimers(es, now: now)
        }
    }

    /// Drain: WebSockets get 1001; idle HTTP connections close; busy ones close after answering.
    func beginDrain() {
        switch state {
        case .http(let http): drainHTTP(http)
        case .webSocket: drainWebSocket()
        case .eventStream:
            closeAfterFlush = true
            scheduleFlush()
        }
    }

    /// Closes the connection now (a lingering close included).
    public func close() {
        guard !isClosed || lingerSinceMs != nil else { return }
        if !isClosed { release() }
        lingerSinceMs = nil
        context.loop.unregister(fd: fd)
        // Input left unread (a client Herald stopped reading) would make the kernel answer the
        // close with a reset, which can destroy the last answers still in flight to the client.
        if readPaused { Socket.discardInput(fd, scratch: context.readScratch) }
        Socket.close(fd)
        if heldLargeQueue { context.trimMemorySoon() }
        switch wire {
        case .http: context.stats.httpConnections.bump(-1)
        case .webSocket:
            context.stats.webSocketConnections.bump(-1)
            if case .webSocket(let ws) = state, ws.deflateWindowBits != nil { context.stats.compressedConnections.bump(-1) }
        case .eventStream: context.stats.eventStreams.bump(-1)
        }
        context.remove(self)
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
        context.loop.modify(fd: fd, events: IOEvents.readable)
    }

    /// Reads and drops input while lingering; closes on end of stream, error or the byte cap.
    private func discardInput() {
        for _ in 0..<Self.lingerReadsPerWake {
            switch Socket.read(fd, into: context.readScratch) {
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
        if case .http(let http) = state {
            let dropped = http.slots
            http.slots.removeAll()
            for slot in dropped { slot.abandon() }
        }
        outbound = OutboundQueue()
        inbound = ByteBuffer()
        // The inflate state goes with the socket, not when the last reference to the connection does.
        if case .webSocket(let ws) = state { ws.assembler.release() }
        state.takeApp()?.closed()
    }
}
