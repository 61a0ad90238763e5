// IdempotentWrite: which keys are accepted, what the fingerprint covers, where the kept replies
// live, and the script's answers read back, against a real redis-server.
import HeraldTestSupport
import XCTest

@testable import Herald

final class IdempotencyTests: XCTestCase {
    private func request(_ key: String?, body: String = "m", target: String = "/publish/c", type: String? = nil) -> HTTPRequest {
        var headers: [(name: String, value: String)] = [("host", "x")]
        if let key { headers.append(("idempotency-key", key)) }
        if let type { headers.append(("content-type", type)) }
        return HTTPRequest(method: "POST", target: target, headers: headers, body: Array(body.utf8))
    }

    func testKeys() throws {
        XCTAssertNil(try IdempotentWrite.from(request(nil)).get())
        XCTAssertEqual(try IdempotentWrite.from(request("order 42/attempt~1")).get()?.key, "order 42/attempt~1")
        XCTAssertNotNil(try IdempotentWrite.from(request(String(repeating: "k", count: 128))).get())
        for bad in ["", String(repeating: "k", count: 129), "tab\there", "caf\u{e9}", "nul\u{0}"] {
            guard case .failure(let error) = IdempotentWrite.from(request(bad)) else { return XCTFail("accepted \(bad.debugDescription)") }
            XCTAssertEqual(error.code, "bad_idempotency_key")
        }
    }

    func testTheFingerprintCoversTheWholeRequest() throws {
        let base = try IdempotentWrite.from(request("k")).get()!.fingerprint
        XCTAssertEqual(base.count, 64)
        XCTAssertEqual(try IdempotentWrite.from(request("k")).get()!.fingerprint, base)
        XCTAssertNotEqual(try IdempotentWrite.from(request("k", body: "n")).get()!.fingerprint, base)
        XCTAssertNotEqual(try IdempotentWrite.from(request("k", target: "/publish/c?sharded=1")).get()!.fingerprint, base)
        XCTAssertNotEqual(try IdempotentWrite.from(request("k", type: "text/plain")).get()!.fingerprint, base)
    }

    func testKeysOfDifferentTargetsAndScopesDiffer() {
        let write = IdempotentWrite(key: "k", fingerprint: String(repeating: "0", count: 64))
        let keys = [
            write.redisKey(scope: "stream", target: "a", slotOf: "a"), write.redisKey(scope: "queue", target: "a", slotOf: "a"),
            write.redisKey(scope: "stream", target: "a:k", slotOf: "a:k"), write.redisKey(scope: "stream", target: "b", slotOf: "b"),
        ]
        XCTAssertEqual(Set(keys).count, keys.count)
        // In the slot of what is written, so one script's keys share a node.
        XCTAssertEqual(SlotHash.slot(write.redisKey(scope: "queue", target: "jobs{eu}", slotOf: "jobs{eu}")), SlotHash.slot(Array("jobs{eu}".utf8)))
        XCTAssertEqual(SlotHash.slot(write.redisKey(scope: "queue", target: "jobs", slotOf: "jobs")), SlotHash.slot(Array("jobs".utf8)))
    }

    func testTheScriptDoesTheWorkOnceAndTellsReuse() throws {
        let bed = try RedisTestbed()
        defer { bed.stop() }
        let write = IdempotentWrite(key: "k1", fingerprint: String(repeating: "a", count: 64))
        let key = write.redisKey(scope: "stream", target: "s", slotOf: "s")
        let xadd: [[UInt8]] = .command("XADD", "s", "*", "f", "v")
        func run(_ w: IdempotentWrite) -> IdempotentWrite.Outcome? {
            var reply: RedisReply?
            bed.link.send(w.command(redisKey: key, commands: [xadd, .command("LPUSH", "l", "x")], keys: [Array("s".utf8)], ttlMs: 5000)) {
                reply = $0
            }
            bed.loop.run(until: { reply != nil })
            return reply.flatMap(IdempotentWrite.outcome)
        }
        guard case .done(let first)? = run(write), first.count == 2, case .string(let id) = first[0] else { return XCTFail() }
        XCTAssertEqual(first[1], .integer(1))
        guard case .replayed(let again)? = run(write) else { return XCTFail() }
        XCTAssertEqual(again, [.string(id), .integer(1)])
        XCTAssertEqual(bed.call("XLEN", "s")?.integer, 1)
        XCTAssertEqual(bed.call("LLEN", "l")?.integer, 1)
        guard case .reused? = run(IdempotentWrite(key: "k1", fingerprint: String(repeating: "b", count: 64))) else { return XCTFail() }
        let ttl = bed.call(["PTTL", String(decoding: key, as: UTF8.self)])?.integer ?? 0
        XCTAssertTrue((1...5000).contains(ttl), "\(ttl)")
    }
}
