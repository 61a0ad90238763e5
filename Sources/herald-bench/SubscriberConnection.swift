// One subscriber: connects, upgrades (or opens Webdis's HTTP stream), waits for the gateway's
// confirmation, then counts deliveries and records each one's latency from the send time its
// payload carries. Answers pings so a long idle hold is not dropped as a dead peer.
import Glibc
import Herald

/// One subscriber connection; confined to its worker's loop.
final class SubscriberConnection: IOHandler {
    enum State {
        case connecting, awaitingHead, awaitingConfirm, live, closed
    }

    unowned let worker: BenchWorker
    /// Global subscriber index (its channel with `--distinct`).
    let index: Int
    private(set) var state = State.connecting
    private(set) var fd: Int32 = -1
    private var inbound = Reassembly()
    /// Bytes the socket did not take yet (the request, pongs).
    private var pendingOut = PendingWrites()

    init(worker: BenchWorker, index: Int) {
        self.worker = worker
        self.index = index
    }

    var isConfirmed: Bool { state == .live }

    /// Starts the connect; false when it failed at once.
    func start(source: in_addr?) -> Bool {
        switch Connector.start(to: worker.serverAddress, port: worker.options.port, from: source) {
        case .failure(let error):
            worker.noteError(error.description)
            state = .closed
            return false
        case .success(let socket):
            fd = socket
            do {
                try worker.loop.register(fd: fd, handler: self, events: IOEvents.writable)
            } catch {
                Glibc.close(fd)
                state = .closed
                return false
            }
            return true
        }
    }

    func handleEvents(_ events: UInt32) {
        if state == .connecting {
            if let error = Connector.finish(fd) {
                worker.noteError(error.description)
                close()
                return
            }
            state = .awaitingHead
            worker.loop.modify(fd: fd, events: IOEvents.readable)
            send(requestBytes())
            return
        }
        if events & (IOEvents.readable | IOEvents.hangup) != 0 { readAll() }
        if events & IOEvents.writable != 0 && state != .closed { flushPending() }
    }

    private func requestBytes() -> [UInt8] {
        let options = worker.options
        let channel = options.channelName(index)
        let host = "\(options.host):\(options.port)"
        switch options.target {
        case .herald:
            let format = options.format == "raw" ? "&format=raw" : ""
            return ClientFrames.upgradeRequest(path: "/subscribe?channel=\(channel)\(format)", host: host, compression: options.compression)
        case .nchan:
            return ClientFrames.upgradeRequest(path: "/sub?chan=\(channel)", host: host)
        case .webdis:
            return Array("GET /SUBSCRIBE/\(channel) HTTP/1.1\r\nHost: \(host)\r\n\r\n".utf8)
        }
    }

    private func readAll() {
        let scratch = worker.scratch
        reading: for _ in 0..<8 {
            switch Socket.read(fd, into: scratch) {
            case .bytes(let n):
                let now = Nanos.now()
                var buffer = inbound
                inbound = Reassembly()
                buffer.feed(UnsafeRawBufferPointer(rebasing: scratch[0..<n])) { parse($0, now: now) }
                guard state != .closed else { return }
                inbound = buffer
                if n < scratch.count { break reading }
            case .wouldBlock:
                break reading
            case .closed:
                close()
                return
            case .failed(let error):
                worker.noteError(error.description)
                close()
                return
            }
        }
    }

    /// Parses what arrived; returns the bytes consumed.
    private func parse(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> Int {
        var offset = 0
        while state != .closed && offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            if state == .awaitingHead {
                guard let head = HTTPResponseScanner.head(rest) else { return offset }
                let ok = worker.options.target == .webdis ? head.status == 200 && head.chunked : head.status == 101
                guard ok else {
                    worker.noteError("subscribe answered with status \(head.status)")
                    close()
                    return offset
                }
                offset += head.bodyStart
                state = .awaitingConfirm
                // Nchan confirms nothing: a subscriber counts once upgraded (see --settle).
                if worker.options.target == .nchan { confirm() }
            } else if worker.options.target == .webdis {
                guard let chunk = HTTPResponseScanner.chunk(rest, at: 0) else { return offset }
                if chunk.size == 0 {
                    close()
                    return offset
                }
                webdisChunk(UnsafeRawBufferPointer(rebasing: rest[chunk.dataStart..<(chunk.dataStart + chunk.size)]), now: now)
                offset += chunk.end
            } else {
                guard let header = ClientFrames.header(rest), rest.count >= header.headerLength + header.payloadLength else {
                    return offset
                }
                let payload = UnsafeRawBufferPointer(rebasing: rest[header.headerLength..<(header.headerLength + header.payloadLength)])
                if header.opcode == WebSocketOpcode.text.rawValue || header.opcode == WebSocketOpcode.binary.rawValue {
                    worker.wireBytes += header.headerLength + header.payloadLength
                }
                if header.compressed {
                    guard let inflated = worker.inflated(payload) else {
                        worker.noteError("a compressed frame did not inflate")
                        close()
                        return offset
                    }
                    inflated.withUnsafeBytes { frame(opcode: header.opcode, $0, now: now) }
                } else {
                    frame(opcode: header.opcode, payload, now: now)
                }
                offset += header.headerLength + header.payloadLength
            }
        }
        return offset
    }

    private func frame(opcode: UInt8, _ payload: UnsafeRawBufferPointer, now: UInt64) {
        switch opcode {
        case WebSocketOpcode.text.rawValue, WebSocketOpcode.binary.rawValue:
            if worker.options.target == .nchan {
                delivered(payload, now: now)
            } else if let first = payload.first, first >= 0x30 && first <= 0x39 {
                delivered(payload, now: now)
            } else if payload.matches("{\"type\":\"message\"", at: 0) {
                guard let data = payload.firstOffset(of: "\"data\":\"", from: 17) else {
                    worker.deliveredWithoutTime()
                    return
                }
                delivered(UnsafeRawBufferPointer(rebasing: payload[(data + 8)...]), now: now)
            } else if payload.matches("{\"type\":\"subscribed\"", at: 0) {
                confirm()
            } else if payload.matches("{\"type\":\"dropped\",\"count\":", at: 0) {
                var count = 0
                var i = 26
                while i < payload.count && payload[i] >= 0x30 && payload[i] <= 0x39 {
                    count = count * 10 + Int(payload[i] - 0x30)
                    i += 1
                }
                worker.droppedNotices += count
            } else {
                worker.otherMessages += 1
            }
        case WebSocketOpcode.ping.rawValue:
            send(ClientFrames.masked(.pong, payload))
        case WebSocketOpcode.close.rawValue:
            close()
        default:
            break
        }
    }

    /// One `{"SUBSCRIBE":[...]}` chunk (or several, should Webdis ever batch them).
    private func webdisChunk(_ data: UnsafeRawBufferPointer, now: UInt64) {
        var from = 0
        while let start = data.firstOffset(of: "[\"message\",\"", from: from) {
            guard let channelEnd = data.firstOffset(of: "\",\"", from: start + 12) else { break }
            delivered(UnsafeRawBufferPointer(rebasing: data[(channelEnd + 3)...]), now: now)
            from = channelEnd + 3
        }
        if from == 0 && data.firstOffset(of: "[\"subscribe\",") != nil { confirm() }
    }

    @inline(__always)
    private func delivered(_ payload: UnsafeRawBufferPointer, now: UInt64) {
        guard state == .live else {
            worker.otherMessages += 1
            return
        }
        guard let sent = Payload.sentAt(payload) else {
            worker.deliveredWithoutTime()
            return
        }
        if sent < worker.acceptAfterNs {
            // Published before this run started (Nchan replays a channel's stored messages).
            worker.stale += 1
        } else {
            worker.delivered(latencyNs: now >= sent ? now - sent : 0, now: now)
        }
    }

    private func confirm() {
        guard state == .awaitingConfirm else { return }
        state = .live
        worker.subscriberConfirmed(self)
    }

    private func send(_ bytes: [UInt8]) {
        if !pendingOut.send(bytes, fd: fd, loop: worker.loop) { close() }
    }

    private func flushPending() {
        if !pendingOut.drain(fd: fd, loop: worker.loop) { close() }
    }

    /// Closes the socket; a subscriber not yet confirmed counts as failed, a live one as lost.
    func close() {
        guard state != .closed else { return }
        let was = state
        state = .closed
        if fd >= 0 {
            worker.loop.unregister(fd: fd)
            Glibc.close(fd)
        }
        worker.subscriberClosed(self, wasLive: was == .live)
    }
}
