// One blocking `XREAD` per loop over every stream that loop's clients tail: re-issued after
// each answer, and woken with `CLIENT UNBLOCK` when a stream joins the set, so a thousand
// tailing clients cost one Redis connection. Entries are encoded once per loop. In a cluster,
// where XREAD may not span slots, it polls each slot's streams every `pollMs` instead.
import Logging

/// Something that wants the new entries of a stream (a live reader, or a consumer-group
/// reader that only needs to know entries arrived).
public protocol StreamListener: AnyObject {
    /// A new entry, in order. A reader that falls behind calls `stopListening` itself and
    /// catches up from Redis.
    func entryArrived(_ entry: StreamEntry)
}

/// A loop's stream tail; confined to its loop.
public final class StreamTailer {
    private final class Tail {
        let name: RedisName
        /// The last id the tailer has read on this stream.
        var cursor: StreamID
        var listeners: [ObjectIdentifier: StreamListener] = [:]
        init(name: RedisName, cursor: StreamID) {
            self.name = name
            self.cursor = cursor
        }
    }

    private let loop: EventLoop
    /// The blocking link; nil in a cluster (poll mode).
    private let link: RedisConnection?
    /// Where control commands (and, in a cluster, the polls) go.
    private let sender: CommandSender
    private let logger: Logger
    /// Tails by the bytes of the stream key, as Redis tells keys apart (Swift String equality
    /// would merge canonically equivalent keys).
    private var tails: [RedisName: Tail] = [:]
    /// The tailer link's Redis client id, for CLIENT UNBLOCK.
    private var clientID: Int?
    private var reading = false
    /// Milliseconds one XREAD blocks; the reply timeout of the link is well above it.
    static let blockMs = 5000
    /// Poll period in a cluster, ms.
    static let pollMs: Int64 = 50

    public init(loop: EventLoop, link: RedisConnection?, sender: CommandSender, logger: Logger) {
        self.loop = loop
        self.link = link
        self.sender = sender
        self.logger = logger
        link?.onReady = { [unowned self] in
            self.reading = false
            self.link?.send(.command("CLIENT", "ID")) { reply in
                self.clientID = reply.integer
                self.read()
            }
        }
        link?.onDown = { [unowned self] _ in
            self.reading = false
            self.clientID = nil
        }
    }

    /// Starts tailing. The blocking link itself opens with the first tailed stream, so a
    /// Herald used only for pub/sub holds two Redis connections per loop, not three.
    public func connect() {
        if link == nil { poll() }
    }

    public func stop() {
        link?.stop()
        stopped = true
    }

    private var stopped = false

    public func checkTimeouts(now: Int64) { link?.checkTimeouts(now: now) }

    /// Cluster mode: one non-blocking XREAD per slot with tailed streams, every `pollMs`.
    private func poll() {
        guard !stopped else { return }
        var bySlot: [Int: [RedisName]] = [:]
        for tail in tails.values { bySlot[SlotHash.slot(tail.name.bytes), default: []].append(tail.name) }
        var left = bySlot.count
        var progressed = false
        let next = { [weak self] in
            guard let self else { return }
            self.loop.schedule(afterMs: progressed ? 0 : Self.pollMs) { [weak self] in self?.poll() }
        }
        if left == 0 {
            next()
            return
        }
        for streams in bySlot.values {
            var arguments: [[UInt8]] = .command("XREAD", "COUNT", "1000", "STREAMS")
            arguments += streams.map(\.bytes)
            arguments += streams.map { Array((tails[$0]?.cursor ?? .zero).description.utf8) }
            let sent = sender.send(key: streams[0].bytes, arguments) { [weak self] reply in
                guard let self else { return }
                if case .array = reply { progressed = true }
                _ = self.handle(reply)
                left -= 1
                if left == 0 { next() }
            }
            if !sent {
                left -= 1
                if left == 0 { next() }
            }
        }
    }

    /// The tailer's position on `stream`, if it tails it.
    public func cursor(of stream: RedisName) -> StreamID? { tails[stream]?.cursor }

    /// Adds `listener` to `stream`, read from after `from` (when the stream is not tailed yet).
    public func listen(_ listener: StreamListener, stream: RedisName, from: StreamID) {
        let key = stream
        if let tail = tails[key] {
            tail.listeners[ObjectIdentifier(listener)] = listener
            return
        }
        let tail = Tail(name: stream, cursor: from)
        tail.listeners[ObjectIdentifier(listener)] = listener
        tails[key] = tail
        if let link, link.state == .disconnected, !stopped {
            link.connect()
            return
        }
        wake()
    }

    public func stopListening(_ listener: StreamListener, stream: RedisName) {
        let key = stream
        guard let tail = tails[key] else { return }
        tail.listeners[ObjectIdentifier(listener)] = nil
        if tail.listeners.isEmpty { tails[key] = nil }
    }

    /// The set of streams changed: interrupt the blocked XREAD so the next one includes it.
    private func wake() {
        guard link != nil else { return }
        if !reading {
            read()
        } else if let id = clientID {
            // The UNBLOCK may overtake the XREAD it targets (they travel on two connections):
            // when it finds nothing blocked, try again shortly.
            sender.send(key: nil, .command("CLIENT", "UNBLOCK", String(id))) { [weak self] reply in
                guard let self, reply.integer == 0, self.reading else { return }
                self.loop.schedule(afterMs: 20) { [weak self] in self?.wake() }
            }
        }
    }

    private func read() {
        guard let link, !reading, link.isReady, clientID != nil, !tails.isEmpty else { return }
        let streams = tails.values.map(\.name).sorted()
        var arguments: [[UInt8]] = .command("XREAD", "COUNT", "1000", "BLOCK", String(Self.blockMs), "STREAMS")
        arguments += streams.map(\.bytes)
        arguments += streams.map { Array(tails[$0]!.cursor.description.utf8) }
        reading = true
        link.send(arguments) { [weak self] reply in
            guard let self else { return }
            self.reading = false
            if self.handle(reply) {
                self.read()
            } else {
                self.loop.schedule(afterMs: 1000) { [weak self] in self?.read() }
            }
        }
    }

    /// Delivers what XREAD returned; false after an error (the next read waits a second, so a
    /// key that turned into another type cannot spin the loop).
    private func handle(_ reply: RedisReply) -> Bool {
        switch reply {
        case .linkLost: return false
        case .error(let error):
            logger.error("XREAD failed", metadata: ["error": "\(error)"])
            return false
        default: break
        }
        guard case .array(let streams) = reply else { return true }
        for item in streams {
            guard case .array(let pair) = item, pair.count == 2, let key = pair[0].bytes, let tail = tails[RedisName(bytes: key)] else { continue }
            let name = tail.name
            for entry in StreamEntry.list(pair[1], stream: name) where entry.id > tail.cursor {
                tail.cursor = entry.id
                for listener in Array(tail.listeners.values) { listener.entryArrived(entry) }
            }
        }
        return true
    }
}
