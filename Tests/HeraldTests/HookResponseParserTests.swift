// HookResponseParser: a backend's answer however TCP cuts it; lengths, chunks and closes; and
// the caps that keep a hostile or broken backend from costing Herald more than a refusal.
import HeraldTestSupport
import XCTest

@testable import Herald

final class HookResponseParserTests: XCTestCase {
    private func parse(_ pieces: [[UInt8]], maxBody: Int = 1024, close: Bool = false) -> HookResponseParser.Outcome {
        var parser = HookResponseParser(maxBody: maxBody)
        var outcome = HookResponseParser.Outcome.needMore
        for piece in pieces {
            outcome = parser.feed(piece)
            if outcome != .needMore { return outcome }
        }
        return close ? parser.finish() : outcome
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testContentLengthAnswerAtEverySplit() {
        let answer = bytes("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"user\":\"alice\"}")
        for split in ByteSplits.all(answer) {
            XCTAssertEqual(parse(split), .response(HookResponse(status: 200, body: bytes("{\"user\":\"alice\"}"), closes: false)))
        }
    }

    func testChunkedAnswerWithExtensionsAndTrailersAtEverySplit() {
        let answer = bytes("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nnope\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n")
        for split in ByteSplits.all(answer) {
            XCTAssertEqual(parse(split), .response(HookResponse(status: 403, body: bytes("nope!"), closes: false)))
        }
    }

    func testBodyRunningToTheCloseAndConnectionClose() {
        XCTAssertEqual(
            parse([bytes("HTTP/1.0 200 OK\r\n\r\nhello")], close: true),
            .response(HookResponse(status: 200, body: bytes("hello"), closes: true)))
        XCTAssertEqual(
            parse([bytes("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")]),
            .response(HookResponse(status: 204, body: [], closes: true)))
    }

    func testOversizedAnswersAreRefusedBeforeTheyAreRead() {
        // Said up front...
        guard case .invalid = parse([bytes("HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n")]) else { return XCTFail() }
        // ... or found out while chunks arrive, or while a close-delimited body grows.
        let chunk = bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n") + [UInt8](repeating: 65, count: 2048)
        guard case .invalid = parse([chunk]) else { return XCTFail() }
        guard case .invalid = parse([bytes("HTTP/1.1 200 OK\r\n\r\n") + [UInt8](repeating: 65, count: 2000)]) else { return XCTFail() }
        // An endless header block.
        guard case .invalid = parse([bytes("HTTP/1.1 200 OK\r\n") + Array(repeating: bytes("X: y\r\n"), count: 4000).flatMap { $0 }]) else {
            return XCTFail()
        }
    }

    func testGarbageIsInvalid() {
        for garbage in [
            "SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            guard case .invalid = parse([bytes(garbage)]) else { return XCTFail("accepted \(garbage.debugDescription)") }
        }
        // A close before the promised length is no answer.
        guard case .invalid = parse([bytes("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")], close: true) else { return XCTFail() }
    }

    func testOneParserReadsAnswersOneAfterAnother() {
        var parser = HookResponseParser(maxBody: 100)
        XCTAssertEqual(parser.feed(bytes("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")), .response(HookResponse(status: 200, body: [], closes: false)))
        XCTAssertEqual(parser.feed(bytes("HTTP/1.1 401 No\r\nContent-Length: 1\r\n\r\nx")), .response(HookResponse(status: 401, body: [120], closes: false)))
    }
}

final class HookTargetTests: XCTestCase {
    func testURLs() throws {
        XCTAssertEqual(try HookTarget.parse("http://backend:3000/auth/herald"), HookTarget(host: "backend", port: 3000, path: "/auth/herald"))
        XCTAssertEqual(try HookTarget.parse("http://10.0.0.5"), HookTarget(host: "10.0.0.5", port: 80, path: "/"))
        XCTAssertEqual(try HookTarget.parse("http://[::1]:81?v=1"), HookTarget(host: "::1", port: 81, path: "/?v=1"))
        XCTAssertEqual(try HookTarget.parse("http://[::1]:81/x").hostHeader, "[::1]:81")
        for bad in ["https://b/x", "ftp://b", "http://", "http://:80/", "http://b:0/", "http://b:99999/", "http://u:p@b/", "http://b/a b", "http://b/#f"] {
            XCTAssertThrowsError(try HookTarget.parse(bad), bad)
        }
    }

    func testEvents() throws {
        XCTAssertEqual(try HookEvents.parse("connect, publish"), [.connect, .publish])
        XCTAssertEqual(try HookEvents.parse("SUBSCRIBE"), [.subscribe])
        XCTAssertThrowsError(try HookEvents.parse("connect,delete"))
        XCTAssertThrowsError(try HookEvents.parse(" , "))
        XCTAssertEqual(HookEvents.all.names, ["connect", "subscribe", "publish"])
    }

    func testVerdicts() {
        func answer(_ status: Int, _ body: String = "") -> Result<HookResponse, HookFailure> {
            .success(HookResponse(status: status, body: Array(body.utf8), closes: false))
        }
        XCTAssertEqual(Hooks.verdict(answer(200), event: .subscribe), .allowed(user: nil, info: nil))
        XCTAssertEqual(Hooks.verdict(answer(204), event: .connect), .allowed(user: nil, info: nil))
        XCTAssertEqual(
            Hooks.verdict(answer(200, #"{"user":"alice","info":{"n":1}}"#), event: .connect),
            .allowed(user: "alice", info: .object(["n": .number("1")])))
        XCTAssertEqual(Hooks.verdict(answer(401), event: .publish), .refused)
        XCTAssertEqual(Hooks.verdict(answer(403), event: .connect), .refused)
        for status in [302, 404, 500, 503] {
            guard case .unavailable = Hooks.verdict(answer(status), event: .subscribe) else { return XCTFail("\(status)") }
        }
        guard case .unavailable = Hooks.verdict(answer(200, "not json"), event: .connect) else { return XCTFail() }
        guard case .unavailable = Hooks.verdict(answer(200, #"{"user":7}"#), event: .connect) else { return XCTFail() }
        guard case .unavailable = Hooks.verdict(.failure(HookFailure("timeout")), event: .connect) else { return XCTFail() }
    }
}
