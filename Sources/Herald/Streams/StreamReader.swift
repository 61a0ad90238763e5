// One client reading one stream: replays history with XRANGE pages from its position, then
// joins the loop's tail with no gap and no duplicate at the seam (every entry it sends is newer
// than the last one it sent). A client too slow for the live tail falls back to XRANGE pages
// and rejoins once caught up, so nothing is dropped: streams are at-least-once.

/// A stream subscription of one WebSocket client; confined to its loop.
final class StreamReader: StreamListener {
    private enum State { case starting, replaying, waitingForRoom, live, stopped }

    let stream: RedisName
    private let connection: any StreamClient
    private let position: StreamPosition
    private var state = State.starting
    /// The newest entry sent to the client; nil until the first one (for a time position).
    private var lastID: StreamID?
    /// For a time position: the first XRANGE starts here (inclusive), ms.
    private var startMs: UInt64?
    /// Entries per XRANGE page.
    static let pageSize = 500

    private let services: StreamServices

    init(stream: RedisName, position: StreamPosition, connection: any StreamClient, services: StreamServices) {
        self.stream = stream
        self.position = position
        self.connection = connection
        self.services = services
    }
    private var key: [UInt8] { stream.bytes }

    func start() {
        switch position {
        case .newOnly:
            command(.command("XREVRANGE", stream, "+", "-", "COUNT", "1")) { [unowned self] reply in
                self.lastID = StreamEntry.list(reply, stream: self.stream).first?.id ?? .zero
                self.joinTail()
            }
        case .time(let ms):
            startMs = ms
            replay()
        case .after(let id):
            lastID = id
            guard id != .zero else {
                replay()
                return
            }
            checkTrimmed(after: id)
        }
    }

    func stop() {
        if state == .live { services.tailer.stopListening(self, stream: stream) }
        state = .stopped
    }

    /// A resume from an id Redis no longer holds must not look like silence: when entries
    /// after it were trimmed or deleted, the client is told which id is now the earliest.
    private func checkTrimmed(after id: StreamID) {
        command(.command("XINFO", "STREAM", stream), allowError: true) { [unowned self] reply in
            if case .array(let info) = reply {
                var fields: [String: RedisReply] = [:]
                var i = 0
                while i + 1 < info.count {
                    if let name = info[i].text { fields[name] = info[i + 1] }
                    i += 2
                }
                let maxDeleted = fields["max-deleted-entry-id"]?.text.flatMap(StreamID.init) ?? .zero
                let earliest = fields["first-entry"].flatMap { first -> String? in
                    if case .array(let pair) = first, let text = pair.first?.text { return text }
                    return nil
                }
                // XDEL records the largest id it removed; XTRIM does not, but a first entry
                // newer than the resume point, in a stream that lost entries, means entries
                // after it may be gone.
                let trimmed =
                    (fields["entries-added"]?.integer ?? 0) > (fields["length"]?.integer ?? 0)
                    && (earliest.flatMap(StreamID.init).map { $0 > id } ?? false)
                if maxDeleted > id || trimmed {
                    self.sendJSON(
                        Envelope.answer("gap", id: nil) { o in
                            o.field("stream", self.stream)
                            o.field("after", id.description)
                            if let earliest { o.field("earliest", earliest) }
                            o.field("message", "entries after \(id) may have been trimmed or deleted; resuming from the earliest kept")
                        })
                }
            }
            self.replay()
        }
    }

    private func replay() {
        guard state != .stopped else { return }
        state = .replaying
        let start: String
        if let lastID {
            start = lastID == .zero ? "-" : "(\(lastID)"
        } else {
            start = String(startMs ?? 0)
        }
        command(.command("XRANGE", stream, start, "+", "COUNT", String(Self.pageSize))) { [unowned self] reply in
            guard self.state == .replaying else { return }
            let entries = StreamEntry.list(reply, stream: self.stream)
            for entry in entries where self.lastID.map({ entry.id > $0 }) ?? true {
                // Replay pages are sized to fit; a page never waits for room mid-way.
                self.connection.sendEntry(entry, checkedRoom: true)
                self.lastID = entry.id
            }
            if self.lastID == nil, let ms = self.startMs {
                // Nothing at or after the time yet: the tail starts just before it.
                self.lastID = ms == 0 ? .zero : StreamID(ms: ms - 1, seq: .max)
            }
            if entries.count == Self.pageSize {
                self.continueWhenRoom()
            } else {
                self.joinTail()
            }
        }
    }

    /// Next page now, or once the client's queue has room again.
    private func continueWhenRoom() {
        if connection.hasRoom(for: services.maxOutbound / 2) {
            replay()
        } else {
            state = .waitingForRoom
        }
    }

    private func joinTail() {
        guard state != .stopped, let lastID else { return }
        // The tail moved past us while the page was in flight: read the difference first.
        if let cursor = services.tailer.cursor(of: stream), cursor > lastID {
            replay()
            return
        }
        state = .live
        services.tailer.listen(self, stream: stream, from: lastID)
    }

    func entryArrived(_ entry: StreamEntry) {
        guard state == .live, let lastID, entry.id > lastID else { return }
        guard connection.sendEntry(entry) else {
            // Too slow for the live tail: catch up with pages once the queue drains.
            services.tailer.stopListening(self, stream: stream)
            state = .waitingForRoom
            return
        }
        self.lastID = entry.id
    }

    /// The client's queue drained.
    func drained() {
        if state == .waitingForRoom { replay() }
    }

    private func command(_ arguments: [[UInt8]], allowError: Bool = false, _ done: @escaping (RedisReply) -> Void) {
        let sent = services.redis.send(key: key, arguments) { [weak self] reply in
            guard let self, self.state != .stopped else { return }
            switch reply {
            case .linkLost: self.restartLater()
            case .error where !allowError: self.failed(reply)
            default: done(reply)
            }
        }
        if !sent { retryLater(arguments, allowError: allowError, done) }
    }

    /// Redis went away mid-read: start again from the last id sent once it is back.
    private func restartLater() {
        services.loop.schedule(afterMs: 500) { [weak self] in
            guard let self, self.state != .stopped else { return }
            self.state = .starting
            if self.lastID != nil { self.replay() } else { self.start() }
        }
    }

    /// Redis refused a read: the client hears why, and the subscription ends.
    private func failed(_ reply: RedisReply) {
        let mapped = RedisErrors.httpError(reply, command: "reading the stream")
        sendJSON(
            Envelope.answer("error", id: nil) { o in
                o.field("code", mapped.code)
                o.field("stream", self.stream)
                o.field("message", mapped.message)
            })
        stop()
    }

    private func retryLater(_ arguments: [[UInt8]], allowError: Bool, _ done: @escaping (RedisReply) -> Void) {
        services.loop.schedule(afterMs: 500) { [weak self] in
            guard let self, self.state != .stopped else { return }
            self.command(arguments, allowError: allowError, done)
        }
    }

    private func sendJSON(_ bytes: [UInt8]) {
        connection.sendMessage(bytes)
    }
}
