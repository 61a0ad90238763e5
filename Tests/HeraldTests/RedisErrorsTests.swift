// RedisErrors: the one place a Redis outcome becomes the error a client sees. Link loss is told
// by type (`.linkLost`), so no text Redis sends can pass for it, and "nothing was done" vs "it
// may or may not have run" follows `LinkLoss.mayHaveRun` alone.
@testable import Herald
import XCTest

final class RedisErrorsTests: XCTestCase {
    private func mapped(_ reply: RedisReply, _ command: String = "XADD") -> HTTPError {
        RedisErrors.httpError(reply, command: command)
    }

    private func assertError(
        _ error: HTTPError, _ status: Int, _ code: String, _ message: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(error.status, status, file: file, line: line)
        XCTAssertEqual(error.code, code, file: file, line: line)
        XCTAssertEqual(error.message, message, file: file, line: line)
        XCTAssertFalse(error.closesConnection, "a Redis failure leaves the connection usable", file: file, line: line)
    }

    func testLinkLostBeforeSendingSaysNothingWasDone() {
        let error = mapped(.linkLost(.notSent("the node 10.0.0.2:7001 that holds the slot is not connected yet")))
        assertError(
            error, 503, "redis_unavailable",
            "Redis is unreachable (the node 10.0.0.2:7001 that holds the slot is not connected yet); nothing was done")
    }

    func testLinkLostAfterSendingSaysItMayHaveRun() {
        let error = mapped(.linkLost(LinkLoss(reason: "Redis closed the connection", mayHaveRun: true)), "PUBLISH")
        assertError(
            error, 503, "redis_unavailable",
            "the Redis connection was lost before Redis answered PUBLISH; it may or may not have run")
    }

    /// A write refused by a demoted master (a failover): unavailable for a moment, not an error.
    func testReadOnlyReplicaIsUnavailable() {
        let error = mapped(.error("READONLY You can't write against a read only replica."))
        assertError(
            error, 503, "redis_unavailable",
            "Redis refused XADD (READONLY You can't write against a read only replica.): a failover is under way; nothing was done")
    }

    /// A Redis error reply that happens to read like Herald's old in-band link-down marker is
    /// still Redis refusing the command, not a lost link.
    func testRedisErrorTextCannotPassForALostLink() {
        let error = mapped(.error("HERALD_LINK_DOWN said by a script"), "EVAL")
        assertError(error, 502, "redis_error", "Redis refused EVAL: HERALD_LINK_DOWN said by a script")
    }

    func testWrongTypeIs409() {
        let text = "WRONGTYPE Operation against a key holding the wrong kind of value"
        assertError(mapped(.error(text)), 409, "wrong_type", "the key holds another kind of value: \(text)")
    }

    func testNoGroupIs404() {
        let text = "NOGROUP No such key 'orders' or consumer group 'billing' in XREADGROUP with GROUP option"
        assertError(mapped(.error(text), "XREADGROUP"), 404, "no_group", text)
    }

    func testBadIDIs400() {
        for text in [
            "ERR Invalid stream ID specified as stream command argument",
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        ] {
            assertError(mapped(.error(text)), 400, "bad_id", text)
        }
    }

    func testOtherErrorIs502WithRedisText() {
        assertError(
            mapped(.error("ERR unknown command 'SPUBLISH'"), "SPUBLISH"),
            502, "redis_error", "Redis refused SPUBLISH: ERR unknown command 'SPUBLISH'")
    }

    func testUnexpectedReplyIs502() {
        for reply: RedisReply in [.status("OK"), .null, .string([0x41]), .array([])] {
            assertError(mapped(reply, "PUBLISH"), 502, "redis_error", "Redis refused PUBLISH: unexpected reply")
        }
    }

    func testOnlyAnExistingGroupIsToleratedOnCreate() {
        XCTAssertTrue(RedisErrors.isExistingGroup(.error("BUSYGROUP Consumer Group name already exists")))
        XCTAssertFalse(RedisErrors.isExistingGroup(.error("WRONGTYPE Operation against a key holding the wrong kind of value")))
        XCTAssertFalse(RedisErrors.isExistingGroup(.linkLost(.notSent("BUSYGROUP"))))
        XCTAssertFalse(RedisErrors.isExistingGroup(.status("OK")))
    }
}
