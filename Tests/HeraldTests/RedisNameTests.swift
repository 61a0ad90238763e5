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

    func testBytesAreKeptExactlyAndTextIsTheirDecoding() {
        let bytes: [UInt8] = [0x63, 0x61, 0x66, 0x65, 0xCC, 0x81]
        XCTAssertEqual(RedisName(bytes: bytes).bytes, bytes)
        XCTAssertEqual(RedisName(decomposed).bytes, bytes, "no normalization on the way in")
        XCTAssertEqual(Array(RedisName(bytes: bytes).text.utf8), bytes, "nor on the way out")
        XCTAssertEqual(RedisName(validating: bytes), RedisName(decomposed))
        XCTAssertNil(RedisName(validating: [0x61, 0xFF]), "names Herald accepts are UTF-8")
        XCTAssertNil(RedisName(validating: [0xC0, 0xAF]), "overlong")
    }

    func testCommandArgumentsCarryTheNamesBytes() {
        let arguments: [[UInt8]] = .command("XADD", RedisName(decomposed), "*")
        XCTAssertEqual(arguments, [Array("XADD".utf8), Array(decomposed.utf8), [UInt8(ascii: "*")]])
        XCTAssertNotEqual(arguments, .command("XADD", RedisName(composed), "*"))
    }

    func testJSONIsWrittenFromTheBytes() {
        var json = JSONWriter()
        json.object {
            $0.field("channel", RedisName(decomposed))
            $0.field("names", names: [RedisName(composed), RedisName("a\"b")])
        }
        XCTAssertEqual(json.bytes, Array(#"{"channel":"\#(decomposed)","names":["\#(composed)","a\"b"]}"#.utf8))
    }

    func testJSONStringsBecomeNamesAsSent() throws {
        let parsed = try JSONValue.parse(Array(#"{"a":"cafe\u0301","b":"caf\u00e9"}"#.utf8))
        XCTAssertEqual(parsed["a"]?.nameValue, RedisName(decomposed))
        XCTAssertEqual(parsed["b"]?.nameValue, RedisName(composed))
        XCTAssertNotEqual(parsed["a"]?.nameValue, parsed["b"]?.nameValue)
        XCTAssertNil(JSONValue.number("1").nameValue)
    }
}
