// HookClient against a real backend on a loopback socket: keep-alive reuse, the pool's cap,
// deadlines, oversized and garbage answers, and a keep-alive connection the backend closed.
import Dispatch
import Glibc
import HeraldTestSupport
import Synchronization
import XCTest

@testable import Herald

/// A blocking HTTP backend on its own threads; `answer` decides each response from the request
/// body (nil: never answer).
private final class Backend: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let answer: @Sendable ([UInt8]) -> [UInt8]?
    let accepted = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    private let sockets = Mutex<[Int32]>([])

    init(_ answer: @escaping @Sendable ([UInt8]) -> [UInt8]?) throws {
        self.answer = answer
        port = FreePort.find()
        listener = try Socket.listen(host: "127.0.0.1", port: port, reusePort: false)
        let flags = fcntl(listener, F_GETFL)
        _ = fcntl(listener, F_SETFL, flags & ~O_NONBLOCK)
        DispatchQueue.global().async { self.acceptLoop() }
    }

    private func acceptLoop() {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else { return }
            accepted.add(1, ordering: .relaxed)
            sockets.withLock { $0.append(fd) }
            DispatchQueue.global().async { self.serve(fd) }
        }
    }

    private func serve(_ fd: Int32) {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // One request: head, then Content-Length bytes.
            while true {
                if let end = Self.headEnd(buffer) {
                    let head = String(decoding: buffer[..<end], as: UTF8.self).lowercased()
                    let length =
                        head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: " ")) } ?? 0
                    if buffer.count >= end + 4 + length {
                        let body = Array(buffer[(end + 4)..<(end + 4 + length)])
                        buffer.removeFirst(end + 4 + length)
                        requests.add(1, ordering: .relaxed)
                        guard let response = answer(body) else { return }  // hold the socket, say nothing
                        if response.isEmpty {
                            Glibc.close(fd)
                            return
                        }
                        _ = response.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        break
                    }
                }
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                buffer += chunk[..<n]
            }
        }
    }

    private static func headEnd(_ b: [UInt8]) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    /// Closes every connection the backend holds (an idle-timeout on its side).
    func dropConnections() {
        sockets.withLock { fds in
            for fd in fds { shutdown(fd, Int32(SHUT_RDWR)) }
            fds = []
        }
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
        dropConnections()
    }

    static func response(_ status: Int, _ body: String = "", headers: String = "") -> [UInt8] {
        Array("HTTP/1.1 \(status) X\r\nContent-Length: \(body.utf8.count)\r\n\(headers)\r\n\(body)".utf8)
    }
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

final class HookClientTests: XCTestCase {
    /// The client connection the calls are made for (one: these tests are not about turns).
    private static let caller = ObjectIdentifier(HookClientTests.self)

    private var loop: EventLoop!
    private var backend: Backend?

    override func setUpWithError() throws { loop = try EventLoop() }

    override func tearDown() {
        backend?.stop()
        loop = nil
    }

    private func client(_ answer: @escaping @Sendable ([UInt8]) -> [UInt8]?, timeoutMs: Int64 = 2000, connections: Int = 4) throws -> HookClient {
        let backend = try Backend(answer)
        self.backend = backend
        let target = HookTarget(host: "127.0.0.1", port: backend.port, path: "/hook")
        return HookClient(loop: loop, target: target, address: try target.resolve(), timeoutMs: timeoutMs, maxConnections: connections, logger: .test())
    }

    private func call(_ client: HookClient, _ body: String = "{}") -> Result<HookResponse, HookFailure>? {
        var result: Result<HookResponse, HookFailure>?
        client.call(Array(body.utf8), for: Self.caller) { result = $0 }
        loop.run(until: { result != nil }, timeoutMs: 10_000)
        return result
    }

    func testAnswersComeBackOnOneKeptAliveConnection() throws {
        let client = try client { body in Backend.response(200, String(decoding: body, as: UTF8.self)) }
        for n in 0..<5 {
            guard case .success(let response)? = call(client, "{\"n\":\(n)}") else { return XCTFail() }
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(String(decoding: response.body, as: UTF8.self), "{\"n\":\(n)}")
        }
        XCTAssertEqual(backend!.accepted.load(ordering: .relaxed), 1)
    }

    func testManyCallsAtOnceShareTheCappedPool() throws {
        let client = try client(
            { _ in
                usleep(2000); return Backend.response(200)
            }, connections: 3)
        var answered = 0
        for _ in 0..<40 {
            client.call(Array("{}".utf8), for: Self.caller) { result in
                if case .success(let r) = result, r.status == 200 { answered += 1 }
            }
        }
        XCTAssertTrue(loop.run(until: { answered == 40 }, timeoutMs: 10_000))
        XCTAssertLessThanOrEqual(backend!.accepted.load(ordering: .relaxed), 3)
    }

    func testASilentBackendIsNoAnswerAtTheDeadline() throws {
        let client = try client({ _ in nil }, timeoutMs: 300)
        let started = Clock.nowMs()
        guard case .failure(let failure)? = call(client) else { return XCTFail() }
        XCTAssertTrue(failure.description.contains("no answer within 300 ms"), failure.description)
        XCTAssertGreaterThanOrEqual(Clock.nowMs() - started, 290)
        XCTAssertEqual(client.openConnections, 0)
    }

    func testAHugeAnswerIsRefusedAndNothingHangs() throws {
        let client = try client { _ in
            Array("HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n".utf8) + [UInt8](repeating: 65, count: 10 << 20)
        }
        guard case .failure(let failure)? = call(client) else { return XCTFail() }
        XCTAssertTrue(failure.description.contains("over"), failure.description)
        XCTAssertEqual(client.openConnections, 0)
    }

    func testGarbageIsNoAnswer() throws {
        let client = try client { _ in Array("SSH-2.0-OpenSSH_9.2\r\n\r\n".utf8) }
        guard case .failure? = call(client) else { return XCTFail() }
    }

    func testAConnectionTheBackendClosedWhileIdleIsReplaced() throws {
        let client = try client { _ in Backend.response(200) }
        guard case .success? = call(client) else { return XCTFail() }
        backend!.dropConnections()
        loop.run(forMs: 50)
        guard case .success(let response)? = call(client) else { return XCTFail("the call on a dead keep-alive connection failed") }
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(backend!.accepted.load(ordering: .relaxed), 2)
    }

    func testABackendThatClosesAfterEachAnswerWorks() throws {
        let client = try client { _ in Backend.response(204, headers: "Connection: close\r\n") }
        for _ in 0..<3 {
            guard case .success(let response)? = call(client) else { return XCTFail() }
            XCTAssertEqual(response.status, 204)
        }
    }

    func testNoBackendIsNoAnswer() throws {
        let port = FreePort.find()
        let target = HookTarget(host: "127.0.0.1", port: port, path: "/")
        let client = HookClient(loop: loop, target: target, address: try target.resolve(), timeoutMs: 1000, logger: .test())
        guard case .failure(let failure)? = call(client) else { return XCTFail() }
        XCTAssertTrue(failure.description.contains("connect"), failure.description)
    }
}
