// WatchedValue: WatchScript's replies read into values, and the messages watchers get (value
// shapes per kind, base64 for bytes that are not UTF-8, the size-only notice, none/deleted/
// expired), and the JSON number test behind sorted-set scores.
@testable import Herald
import XCTest

final class WatchedValueTests: XCTestCase {
    private func bulk(_ text: String) -> RedisReply { .string(Array(text.utf8)) }
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
    private let key = Array("k".utf8)

    private func message(_ reply: RedisReply, snapshot: Bool = false, expired: Bool = false) throws -> String {
        let value = try XCTUnwrap(WatchedValue(reply: reply), "\(reply)")
        return text(value.message(key: key, snapshot: snapshot, expired: expired))
    }

    func testString() throws {
        XCTAssertEqual(
            try message(.array([bulk("string"), .integer(5), bulk("a\"b\n")])),
            #"{"type":"value","key":"k","kind":"string","value":"a\"b\n"}"#)
    }

    func testHashKeepsRedisOrder() throws {
        let reply = RedisReply.array([bulk("hash"), .integer(8), .array([bulk("b"), bulk("2"), bulk("a"), bulk("1")])])
        XCTAssertEqual(try message(reply), #"{"type":"value","key":"k","kind":"hash","value":{"b":"2","a":"1"}}"#)
    }

    func testSetIsSortedByBytes() throws {
        let reply = RedisReply.array([bulk("set"), .integer(6), .array([bulk("b"), bulk("a"), bulk("B")])])
        XCTAssertEqual(try message(reply), #"{"type":"value","key":"k","kind":"set","value":["B","a","b"]}"#)
    }

    func testSortedSetPairsWithNumericScores() throws {
        let reply = RedisReply.array([
            bulk("zset"), .integer(9),
            .array([bulk("low"), bulk("-inf"), bulk("a"), bulk("1.5"), bulk("big"), bulk("1e+20"), bulk("top"), bulk("inf")]),
        ])
        XCTAssertEqual(
            try message(reply), #"{"type":"value","key":"k","kind":"zset","value":[["low","-inf"],["a",1.5],["big",1e+20],["top","inf"]]}"#)
    }

    func testListKeepsOrderAndEmptyElements() throws {
        let reply = RedisReply.array([bulk("list"), .integer(3), .array([bulk("x"), bulk(""), bulk("x")])])
        XCTAssertEqual(try message(reply), #"{"type":"value","key":"k","kind":"list","value":["x","","x"]}"#)
    }

    func testStreamEntriesOldestFirst() throws {
        // XREVRANGE answers newest first.
        let reply = RedisReply.array([
            bulk("stream"), .integer(12),
            .array([
                .array([bulk("2-0"), .array([bulk("f"), bulk("new")])]),
                .array([bulk("1-0"), .array([bulk("f"), bulk("old")])]),
            ]),
        ])
        XCTAssertEqual(
            try message(reply),
            #"{"type":"value","key":"k","kind":"stream","value":[{"id":"1-0","fields":{"f":"old"}},{"id":"2-0","fields":{"f":"new"}}]}"#)
    }

    func testBytesThatAreNotUTF8TravelBase64() throws {
        let reply = RedisReply.array([bulk("hash"), .integer(4), .array([bulk("f"), .string([0xFF, 0x00])])])
        XCTAssertEqual(
            try message(reply), #"{"type":"value","key":"k","kind":"hash","value":{"Zg==":"/wA="},"encoding":"base64"}"#,
            "every string of the value is base64 once one is not UTF-8")
    }

    func testOverTheCapOnlyTheSize() throws {
        XCTAssertEqual(
            try message(.array([bulk("list"), .integer(5_000_000)])),
            #"{"type":"value","key":"k","kind":"list","truncated":true,"size":5000000}"#)
    }

    func testMissingKey() throws {
        let none = RedisReply.array([bulk("none")])
        XCTAssertEqual(try message(none, snapshot: true), #"{"type":"value","key":"k","kind":"none","value":null}"#)
        XCTAssertEqual(try message(none), #"{"type":"deleted","key":"k"}"#)
        XCTAssertEqual(try message(none, expired: true), #"{"type":"expired","key":"k"}"#)
    }

    func testModuleTypesAreNamedNotRead() throws {
        XCTAssertEqual(
            try message(.array([bulk("ReJSON-RL")])), #"{"type":"value","key":"k","kind":"ReJSON-RL","unsupported":true}"#)
    }

    func testRepliesThatAreNotTheScriptsAreRefused() {
        XCTAssertNil(WatchedValue(reply: .error("ERR")))
        XCTAssertNil(WatchedValue(reply: .array([])))
        XCTAssertNil(WatchedValue(reply: .array([bulk("string"), bulk("x")])))
        XCTAssertNil(WatchedValue(reply: .array([bulk("string"), .integer(1), .array([])])))
        XCTAssertNil(WatchedValue(reply: .array([bulk("stream"), .integer(1), .array([bulk("1-0")])])))
    }

    func testJSONNumbers() {
        for good in ["0", "-0", "1", "-12", "1.5", "1e5", "1E+20", "2.5e-3"] {
            XCTAssertTrue(WatchedValue.isJSONNumber(Array(good.utf8)), good)
        }
        for bad in ["", "-", "inf", "-inf", "nan", "01", "1.", ".5", "1e", "1e+", "+1", "0x10", "1 "] {
            XCTAssertFalse(WatchedValue.isJSONNumber(Array(bad.utf8)), bad)
        }
    }
}
