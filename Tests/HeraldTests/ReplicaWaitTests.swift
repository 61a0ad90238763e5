// ReplicaWait: the `replicas` and `timeout` a write may ask for, from a query or a JSON op.
@testable import Herald
import XCTest

final class ReplicaWaitTests: XCTestCase {
    func testNothingAskedIsNoWait() throws {
        XCTAssertNil(try ReplicaWait.parse(replicas: nil, timeout: nil))
        XCTAssertNil(try ReplicaWait.parse(JSONValue.parse(Array(#"{"op":"ack"}"#.utf8))))
    }

    func testReplicasWithAndWithoutTimeout() throws {
        let bare = try XCTUnwrap(ReplicaWait.parse(replicas: "1", timeout: nil))
        XCTAssertEqual([bare.replicas, bare.timeoutMs], [1, ReplicaWait.defaultTimeoutMs])
        let full = try XCTUnwrap(ReplicaWait.parse(replicas: "16", timeout: "60000"))
        XCTAssertEqual([full.replicas, full.timeoutMs], [16, 60_000])
        let json = try XCTUnwrap(ReplicaWait.parse(JSONValue.parse(Array(#"{"replicas":2,"timeout":50}"#.utf8))))
        XCTAssertEqual([json.replicas, json.timeoutMs], [2, 50])
    }

    func testOutOfRangeValuesAreBadRequests() throws {
        let bad: [(String?, String?)] = [
            ("0", nil), ("17", nil), ("-1", nil), ("", nil), ("x", nil), ("1.5", nil),
            ("1", "0"), ("1", "60001"), ("1", "x"), ("1", ""), (nil, "100"),
        ]
        for (replicas, timeout) in bad {
            XCTAssertThrowsError(try ReplicaWait.parse(replicas: replicas, timeout: timeout), "\(String(describing: replicas)) \(String(describing: timeout))")
            {
                XCTAssertEqual(($0 as? HTTPError)?.code, "bad_request")
            }
        }
        XCTAssertThrowsError(try ReplicaWait.parse(JSONValue.parse(Array(#"{"replicas":"1"}"#.utf8))), "a number, not a string")
    }

    func testAShortfallSaysTheWriteMayOrMayNotSurvive() throws {
        let wait = try XCTUnwrap(ReplicaWait.parse(replicas: "2", timeout: "500"))
        let error = wait.shortfall(1)
        XCTAssertEqual([error.status], [504])
        XCTAssertEqual(error.code, "not_replicated")
        XCTAssertTrue(error.message.contains("may or may not survive a failover"), error.message)
    }
}
