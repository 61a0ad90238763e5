// One keep-alive HTTP publisher: writes publish requests in each target's dialect (payload =
// send time), keeps up to `--pipeline` in flight, and matches answers in order. Reconnects when
// the gateway closes it, counting what was in flight as errors.
import Glibc
import Herald

/// One publisher connection; confined to its worker's loop.
final class PublisherConnection: IOHandler {
    unowned let worker: BenchWorker
    private var fd: Int32 = -1
    private(set) var isReady = false
    /// Whether this connection has been established at least once.
    private(set) var wasUp = false
    /// Send time (monotonic ns) and channel of each request in flight, oldest first.
    private var inFlight: [(sentAt: UInt64, channel: Int)] = []
    private var inFlightHead = 0
    private var inbound = Reassembly()
    /// Request bytes the socket did not take yet.
    private var pendingOut = PendingWrites()
    /// Reused request buffer.
    private var request: [UInt8] = []

    init(worker: BenchWorker) {
        self.worker = worker
        request.reserveCapacity(256 + worker.options.size)
    }

    var inFlightCount: Int { inFlight.count - inFlightHead }

    func connect() {
        isReady = false
        switch Connector.start(to: worker.serverAddress, port: worker.options.port, from: nil) {
        case .failure(let error):
            worker.noteError(error.description)
            retryLater()
        case .success(let socket):
            fd = socket
            if (try? worker.loop.register(fd: fd, handler: self, events: IOEvents.writable)) == nil {
                Glibc.close(fd)
                fd = -1
                retryLater()
            }
        }
    }

    private func retryLater() {
        worker.loop.schedule(afterMs: 100) { [weak self] in self?.connect() }
    }

    func handleEvents(_ events: UInt32) {
        if !isReady {
            if let error = Connector.finish(fd) {
                worker.noteError(error.description)
                drop()
                return
            }
            isReady = true
            if !wasUp {
                wasUp = true
                worker.publisherUp()
            }
            worker.loop.modify(fd: fd, events: IOEvents.readable)
            worker.pump(self)
            return
        }
        if events & (IOEvents.readable | IOEvents.hangup) != 0 { readAll() }
        if events & IOEvents.writable != 0 && isReady { flushPending() }
    }

    /// Sends one publish to channel index `channel`.
    func publish(channel: Int, now: UInt64) {
        let options = worker.options
        request.removeAll(keepingCapacity: true)
        switch options.target {
        case .herald:
            request.append(contentsOf: "POST /publish/".utf8)
            worker.appendChannel(channel, into: &request)
            request.append(contentsOf: " HTTP/1.1\r\nHost: b\r\nContent-Length: \(options.size)\r\n\r\n".utf8)
            Payload.append(sentAt: now, size: options.size, json: options.payload == "json", into: &request)
        case .nchan:
            request.append(contentsOf: "POST /pub?chan=".utf8)
            worker.appendChannel(channel, into: &request)
            request.append(contentsOf: " HTTP/1.1\r\nHost: b\r\nContent-Length: \(options.size)\r\n\r\n".utf8)
            Payload.append(sentAt: now, size: options.size, into: &request)
        case .webdis:
            request.append(contentsOf: "GET /PUBLISH/".utf8)
            worker.appendChannel(channel, into: &request)
            request.append(UInt8(ascii: "/"))
            Payload.append(sentAt: now, size: options.size, into: &request)
            request.append(contentsOf: " HTTP/1.1\r\nHost: b\r\n\r\n".utf8)
        }
        inFlight.append((now, channel))
        if !pendingOut.send(request, fd: fd, loop: worker.loop) { drop() }
    }

    private func flushPending() {
        if !pendingOut.drain(fd: fd, loop: worker.loop) { drop() }
    }

    private func readAll() {
        let scratch = worker.scratch
        reading: while true {
            switch Socket.read(fd, into: scratch) {
            case .bytes(let n):
                let now = Nanos.now()
                var buffer = inbound
                inbound = Reassembly()
                buffer.feed(UnsafeRawBufferPointer(rebasing: scratch[0..<n])) { parse($0, now: now) }
                guard isReady else { return }
                inbound = buffer
                if n < scratch.count { break reading }
            case .wouldBlock:
                break reading
            case .closed:
                drop()
                return
            case .failed(let error):
                worker.noteError(error.description)
                drop()
                return
            }
        }
        worker.pump(self)
    }

    private func parse(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> Int {
        var offset = 0
        while isReady, let response = HTTPResponseScanner.response(UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            offset += response.length
            guard inFlightHead < inFlight.count else {
                worker.noteError("an answer nobody asked for (status \(response.status))")
                continue
            }
            let sent = inFlight[inFlightHead]
            inFlightHead += 1
            if inFlightHead == inFlight.count {
                inFlight.removeAll(keepingCapacity: true)
                inFlightHead = 0
            }
            worker.answered(status: response.status, sentAt: sent.sentAt, channel: sent.channel, now: now)
        }
        return offset
    }

    /// The gateway closed (or broke) the connection: what was in flight failed; reconnect.
    private func drop() {
        let lost = inFlightCount
        inFlight.removeAll()
        inFlightHead = 0
        pendingOut.clear()
        inbound = Reassembly()
        isReady = false
        if fd >= 0 {
            worker.loop.unregister(fd: fd)
            Glibc.close(fd)
            fd = -1
        }
        worker.publishFailed(count: lost)
        if worker.control.current != .stop { retryLater() }
    }

    func close() {
        isReady = false
        guard fd >= 0 else { return }
        worker.loop.unregister(fd: fd)
        Glibc.close(fd)
        fd = -1
    }
}
