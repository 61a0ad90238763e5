// PercentDecoding: %XX escapes (RFC 3986 §2.1), `+` in queries, and query parsing.
import Herald
import XCTest

final class PercentDecodingTests: XCTestCase {
    private func decoded(_ text: String, plusIsSpace: Bool = false) -> String? {
        PercentDecoding.decode(text, plusIsSpace: plusIsSpace).map { String(decoding: $0, as: UTF8.self) }
    }

    func testDecodesEscapes() {
        XCTAssertEqual(decoded("a%20b%2Fc%2fd"), "a b/c/d")
        XCTAssertEqual(decoded("%E2%82%AC"), "€")
        XCTAssertEqual(decoded("plain"), "plain")
        XCTAssertEqual(decoded(""), "")
        XCTAssertEqual(PercentDecoding.decode("%00%ff"), [0x00, 0xFF])
    }

    func testPlusIsSpaceOnlyWhenAsked() {
        XCTAssertEqual(decoded("a+b"), "a+b")
        XCTAssertEqual(decoded("a+b%2B", plusIsSpace: true), "a b+")
    }

    func testBadEscapesAreNil() {
        for text in ["%", "%4", "a%zz", "%G0", "%%", "ab%2"] {
            XCTAssertNil(PercentDecoding.decode(text), text)
        }
    }

    func testQueryWithRepeatedKeysAndPlus() throws {
        let items = try XCTUnwrap(PercentDecoding.query("channel=a&channel=b%20c&pattern=mail-*&x=1+2&flag&&empty="))
        XCTAssertEqual(items.map(\.name), ["channel", "channel", "pattern", "x", "flag", "empty"])
        XCTAssertEqual(items.map(\.value), ["a", "b c", "mail-*", "1 2", "", ""])
    }

    func testQueryValueMayContainEquals() throws {
        let items = try XCTUnwrap(PercentDecoding.query("k=a=b"))
        XCTAssertEqual(items.first?.value, "a=b")
    }

    func testEmptyQuery() {
        XCTAssertEqual(PercentDecoding.query("")?.count, 0)
    }

    func testQueryWithBadEncodingIsNil() {
        XCTAssertNil(PercentDecoding.query("channel=%zz"))
        XCTAssertNil(PercentDecoding.query("channel=%FF"), "not UTF-8")
        XCTAssertNil(PercentDecoding.query("%C0%AF=x"), "overlong name")
    }

    func testDecodeTextTakesPlainTextAsItIsAndDecodesEscapes() {
        XCTAssertEqual(PercentDecoding.decodeText("news"[...]), "news")
        XCTAssertEqual(PercentDecoding.decodeText("a%2Fb%20c"[...]), "a/b c")
        XCTAssertEqual(PercentDecoding.decodeText("caf%C3%A9"[...]), "café")
        XCTAssertEqual(PercentDecoding.decodeText("a+b"[...]), "a+b", "+ is a plus in a path")
    }

    func testDecodeTextRefusesBadEscapesAndBytesThatAreNotUTF8() {
        for text in ["%", "a%4", "%zz", "%FF", "%C0%AF"] {
            XCTAssertNil(PercentDecoding.decodeText(text[...]), text)
        }
    }

    func testNamesAreDecodedToTheBytesTheClientEncoded() throws {
        let composed = try XCTUnwrap(PercentDecoding.decodeName("caf%C3%A9"[...]))
        let decomposed = try XCTUnwrap(PercentDecoding.decodeName("cafe%CC%81"[...]))
        XCTAssertEqual(composed.bytes, [0x63, 0x61, 0x66, 0xC3, 0xA9])
        XCTAssertEqual(decomposed.bytes, [0x63, 0x61, 0x66, 0x65, 0xCC, 0x81])
        XCTAssertNotEqual(composed, decomposed, "canonically equivalent text, two names")
        XCTAssertEqual(PercentDecoding.decodeName("cafe\u{0301}"[...]), decomposed, "unescaped UTF-8 taken as is")
        XCTAssertEqual(PercentDecoding.decodeName("a+b"[...]), RedisName("a+b"))
        XCTAssertNil(PercentDecoding.decodeName("%FF"[...]), "not UTF-8")
        XCTAssertNil(PercentDecoding.decodeName("%C0%AF"[...]), "overlong")
        XCTAssertNil(PercentDecoding.decodeName("%4"[...]))
    }

    func testQueryValuesKeepTheirBytes() throws {
        let items = try XCTUnwrap(PercentDecoding.query("channel=cafe%CC%81&channel=caf%C3%A9&stream=caf\u{00E9}&x=a+b"))
        XCTAssertEqual(items.map(\.name), ["channel", "channel", "stream", "x"])
        XCTAssertEqual(items[0].redisName.bytes, Array("cafe\u{0301}".utf8))
        XCTAssertEqual(items[1].redisName.bytes, Array("caf\u{00E9}".utf8))
        XCTAssertNotEqual(items[0].redisName, items[1].redisName)
        XCTAssertEqual(items[1].redisName, items[2].redisName)
        XCTAssertEqual(items[3].value, "a b")
        XCTAssertEqual(QueryItem(name: "token", value: "t").bytes, Array("t".utf8))
    }
}
