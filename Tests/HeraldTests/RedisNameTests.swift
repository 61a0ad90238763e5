// RedisName: names equal only byte for byte, as Redis compares them.
import Herald
import XCTest

final class RedisNameTests: XCTestCase {
    private let composed = "caf\u{00E9}"
    private let decomposed = "cafe\u{0301}"

    func testCanonicallyEquivalentTextIsTwoNames() {
        XCTAssertEqual(composed, decomposed, "Swift calls them equal")
        XCTAssertNotEqual(RedisName(composed), RedisName(decomposed))
        XCTAssertEqual(Set([RedisName(composed), RedisName(decomposed), RedisName(composed)]).count, 2)
        XCTAssertEqual(RedisName(composed), RedisName(String(decoding: Array(composed.utf8), as: UTF8.self)))
    }

    func testOrderIsByBytes() {
        XCTAssertLessThan(RedisName("B"), RedisName("a"))
        XCTAssertLessThan(RedisName(decomposed), RedisName(composed), "0x65 (e) before 0xC3")
        XCTAssertEqual([RedisName("b"), RedisName("a"), RedisName("ab")].sorted().map(\.text), ["a", "ab", "b"])
    }

    func testSetsTellNamesApartByBytes() {
        let names: Set<RedisName> = [RedisName(composed), RedisName("x")]
        XCTAssertTrue(names.contains(RedisName(composed)))
        XCTAssertFalse(names.contains(RedisName(decomposed)))
        XCTAssertTrue(Set([composed, "x"]).contains(decomposed), "what a set of Strings would say")
    }
}
