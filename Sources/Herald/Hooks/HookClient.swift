// Calls to the backend's authorization hook from one event loop: a small pool of keep-alive
// HTTP/1.1 connections (one call on a connection at a time), the calls waiting for a connection
// (one queue per client connection, served in turn, so a client that floods the hook waits
// behind itself and not in front of everyone; capped), and a deadline on every call. Nothing
// blocks the loop and no thread is made per call. A connection the backend closed while idle is
// noticed and dropped; a call that found its reused connection closed before any answer byte is
// retried once on a new one.
import Glibc
import Logging

/// One loop's hook connections; every method runs on the loop's thread.
final class HookClient {
    let target: HookTarget
    private let address: HookAddress
    private let loop: EventLoop
    private let timeoutMs: Int64
    private let maxConnections: Int
    private let maxWaiting: Int
    private let maxWaitingPerCaller: Int
    private let maxBody: Int
    private let logger: Logger
    private var idle: [HookConnection] = []
    private var busy: [ObjectIdentifier: HookConnection] = [:]
    private var open = 0
    private var waiting = FairQueue<ObjectIdentifier, PendingCall>()
    /// Where every connection reads into (the loop runs one read at a time).
    fileprivate var readBuffer = [UInt8](repeating: 0, count: 16 * 1024)

    struct PendingCall {
        let request: [UInt8]
        let deadline: Int64
        let done: (Result<HookResponse, HookFailure>) -> Void
        /// A retry of a call whose reused connection was closed under it.
        var retried = false
    }

    init(
        loop: EventLoop, target: HookTarget, address: HookAddress, timeoutMs: Int64, maxConnections: Int = 16,
        maxWaiting: Int = 65_536, maxWaitingPerCaller: Int = 1024, maxBody: Int = 64 * 1024, logger: Logger
    ) {
        self.loop = loop
        self.target = target
        self.address = address
        self.timeoutMs = timeoutMs
        self.maxConnections = maxConnections
        self.maxWaiting = maxWaiting
        self.maxWaitingPerCaller = maxWaitingPerCaller
        self.maxBody = maxBody
        self.logger = logger
    }

    /// Connections open now (idle or busy), for metrics and tests.
    var openConnections: Int { open }

    /// POSTs `body` (JSON) to the hook for the client connection `caller`; `done` runs once, on
    /// this loop, with the answer or why there is none (connect failure, deadline, malformed or
    /// oversized answer, too many of this client's calls waiting).
    func call(_ body: [UInt8], for caller: ObjectIdentifier, _ done: @escaping (Result<HookResponse, HookFailure>) -> Void) {
        var request = Array("POST \(target.path) HTTP/1.1\r\nHost: \(target.hostHeader)\r\nUser-Agent: Herald\r\n".utf8)
        request += Array("Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        request += body
        let call = PendingCall(request: request, deadline: Clock.nowMs() + timeoutMs, done: done)
        if let connection = idle.popLast() {
            run(call, on: connection, reused: true)
        } else if open < maxConnections {
            connect(call)
        } else if waiting.count(of: caller) >= maxWaitingPerCaller {
            done(.failure(HookFailure("\(maxWaitingPerCaller) hook calls of this client are already waiting")))
        } else if waiting.count >= maxWaiting {
            done(.failure(HookFailure("\(maxWaiting) hook calls are already waiting for a connection")))
        } else {
            waiting.append(call, for: caller)
        }
    }

    private func connect(_ call: PendingCall) {
        switch HookConnection.open(to: address, client: self, loop: loop, maxBody: maxBody) {
        case .success(let connection):
            open += 1
            run(call, on: connection, reused: false)
        case .failure(let failure):
            call.done(.failure(failure))
        }
    }

    private func run(_ call: PendingCall, on connection: HookConnection, reused: Bool) {
        busy[ObjectIdentifier(connection)] = connection
        connection.run(call, reused: reused)
    }

    /// The next waiting call still within its deadline (the next client's turn); the ones past
    /// it are failed on the way.
    private func nextWaiting() -> PendingCall? {
        while let next = waiting.next() {
            if Clock.nowMs() < next.deadline { return next }
            next.done(.failure(HookFailure("no connection to the hook within \(timeoutMs) ms")))
        }
        return nil
    }

    /// A connection finished its call and may be kept.
    fileprivate func release(_ connection: HookConnection) {
        busy[ObjectIdentifier(connection)] = nil
        if let next = nextWaiting() {
            run(next, on: connection, reused: true)
        } else {
            idle.append(connection)
        }
    }

    /// A connection closed (by either side); its call, if any, has been answered or is retried.
    fileprivate func closed(_ connection: HookConnection, retry: PendingCall?) {
        open -= 1
        busy[ObjectIdentifier(connection)] = nil
        idle.removeAll { $0 === connection }
        if let retry {
            if let connection = idle.popLast() { run(retry, on: connection, reused: true) } else { connect(retry) }
        } else if open < maxConnections, let next = nextWaiting() {
            // A slot opened: the next client's waiting call gets a new connection.
            connect(next)
        }
    }

    var callTimeoutMs: Int64 { timeoutMs }

    /// Closes every connection, failing the calls on them and those waiting (loop shutdown).
    func stop() {
        let shuttingDown = HookFailure("Herald is shutting down")
        while let call = waiting.next() { call.done(.failure(shuttingDown)) }
        for connection in Array(busy.values) { connection.abort(shuttingDown) }
        for connection in idle { connection.close() }
        idle = []
    }
}

/// One keep-alive connection to the hook.
private final class HookConnection: IOHandler {
    private enum State { case connecting, writing, reading, idle, closed }

    private let fd: Int32
    private let loop: EventLoop
    private unowned let client: HookClient
    private var state = State.connecting
    private var parser: HookResponseParser
    private var call: HookClient.PendingCall?
    private var reused = false
    private var output: [UInt8] = []
    private var written = 0
    private var receivedAny = false
    private var timer: Int?

    private init(fd: Int32, loop: EventLoop, client: HookClient, maxBody: Int) {
        self.fd = fd
        self.loop = loop
        self.client = client
        self.parser = HookResponseParser(maxBody: maxBody)
    }

    static func open(to address: HookAddress, client: HookClient, loop: EventLoop, maxBody: Int) -> Result<HookConnection, HookFailure> {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(HookFailure("socket: \(String(cString: strerror(errno)))")) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = address.storage
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        guard rc == 0 || errno == EINPROGRESS else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            return .failure(HookFailure("connecting to the hook: \(reason)"))
        }
        let connection = HookConnection(fd: fd, loop: loop, client: client, maxBody: maxBody)
        do {
            try loop.register(fd: fd, handler: connection, events: IOEvents.writable)
        } catch {
            Glibc.close(fd)
            return .failure(HookFailure("\(error)"))
        }
        return .success(connection)
    }

    /// Sends `call`'s request (once connected) and waits for its answer.
    func run(_ call: HookClient.PendingCall, reused: Bool) {
        self.call = call
        self.reused = reused
        output = call.request
        written = 0
        receivedAny = false
        let left = max(1, call.deadline - Clock.nowMs())
        timer = loop.schedule(afterMs: left) { [unowned self] in
            self.timer = nil
            self.fail(HookFailure("no answer within \(self.client.callTimeoutMs) ms"), mayRetry: false)
        }
        if state == .idle {
            state = .writing
            write()
        }
    }

    func handleEvents(_ events: UInt32) {
        switch state {
        case .connecting:
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else {
                fail(HookFailure("connecting to the hook: \(String(cString: strerror(error)))"), mayRetry: false)
                return
            }
            state = .writing
            write()
        case .writing:
            write()
        case .reading, .idle:
            read()
        case .closed:
            return
        }
    }

    private func write() {
        while written < output.count {
            let n = output.withUnsafeBytes { bytes in
                send(fd, bytes.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    loop.modify(fd: fd, events: IOEvents.writable)
                    return
                }
                if errno == EINTR { continue }
                fail(HookFailure("writing to the hook: \(String(cString: strerror(errno)))"), mayRetry: reused && !receivedAny)
                return
            }
            written += n
        }
        output = []
        state = .reading
        loop.modify(fd: fd, events: IOEvents.readable)
    }

    private func read() {
        while state == .reading || state == .idle {
            let result = client.readBuffer.withUnsafeMutableBytes { Socket.read(fd, into: $0) }
            switch result {
            case .bytes(let n):
                guard state == .reading else {
                    // An idle connection has nothing to say: the backend broke the protocol.
                    close()
                    return
                }
                receivedAny = true
                let outcome = client.readBuffer.withUnsafeBytes { parser.feed(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                if handle(outcome) { return }
            case .wouldBlock:
                return
            case .closed:
                if state == .idle {
                    close()
                } else {
                    let outcome = parser.finish()
                    if case .response = outcome {
                        _ = handle(outcome)
                    } else {
                        fail(HookFailure("the hook closed the connection without an answer"), mayRetry: reused && !receivedAny)
                    }
                }
                return
            case .failed(let error):
                if state == .idle {
                    close()
                } else {
                    fail(HookFailure("reading from the hook: \(error)"), mayRetry: reused && !receivedAny)
                }
                return
            }
        }
    }

    /// Acts on what the parser made of the bytes so far. Returns true when reading should stop.
    private func handle(_ outcome: HookResponseParser.Outcome) -> Bool {
        switch outcome {
        case .needMore:
            return false
        case .invalid(let reason):
            fail(HookFailure(reason), mayRetry: false)
            return true
        case .response(let response):
            let call = self.call
            self.call = nil
            cancelTimer()
            if response.closes {
                close()
            } else {
                state = .idle
            }
            call?.done(.success(response))
            if state == .idle { client.release(self) }
            return true
        }
    }

    private func cancelTimer() {
        if let timer { loop.cancelTimer(timer) }
        timer = nil
    }

    /// Ends the call with `failure` (or retries it once on a new connection) and closes.
    private func fail(_ failure: HookFailure, mayRetry: Bool) {
        guard let call else {
            close()
            return
        }
        self.call = nil
        cancelTimer()
        var retry: HookClient.PendingCall?
        if mayRetry && !call.retried && Clock.nowMs() < call.deadline {
            var again = call
            again.retried = true
            retry = again
        } else {
            call.done(.failure(failure))
        }
        closeSocket()
        client.closed(self, retry: retry)
    }

    /// Ends the call in flight with `failure`, without a retry, and closes.
    func abort(_ failure: HookFailure) {
        fail(failure, mayRetry: false)
    }

    func close() {
        guard state != .closed else { return }
        cancelTimer()
        closeSocket()
        client.closed(self, retry: nil)
    }

    private func closeSocket() {
        guard state != .closed else { return }
        state = .closed
        loop.unregister(fd: fd)
        Glibc.close(fd)
    }
}
