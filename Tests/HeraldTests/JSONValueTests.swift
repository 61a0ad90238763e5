// JSONValue: the strict RFC 8259 parser (numbers kept as text, escapes, surrogate pairs,
// depth limit) and compact serialisation.
import Herald
import XCTest

final class JSONValueTests: XCTestCase {
    private func parse(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    private func parseError(_ bytes: [UInt8]) -> JSONError? {
        do throws(JSONError) {
            _ = try JSONValue.parse(bytes)
            return nil
        } catch {
            return error
        }
    }

    private func parseError(_ text: String) -> JSONError? { parseError(Array(text.utf8)) }

    func testScalars() throws {
        XCTAssertEqual(try parse("null"), .null)
        XCTAssertEqual(try parse("true"), .bool(true))
        XCTAssertEqual(try parse(" false\n"), .bool(false))
        XCTAssertEqual(try parse("\"hi\""), .string("hi"))
        XCTAssertEqual(try parse("42"), .number("42"))
    }

    func testObjectsAndArrays() throws {
        XCTAssertEqual(try parse("{}"), .object([:]))
        XCTAssertEqual(try parse("[]"), .array([]))
        XCTAssertEqual(
            try parse(" { \"a\" : 1 , \"b\" : [ true , null ] } "),
            .object(["a": .number("1"), "b": .array([.bool(true), .null])]))
        XCTAssertEqual(try parse("[1,\"two\",{\"three\":3}]"), .array([.number("1"), .string("two"), .object(["three": .number("3")])]))
    }

    func testNested() throws {
        let value = try parse("{\"messages\":[{\"channel\":\"c\",\"message\":{\"deep\":[[[]]]}}]}")
        let first = value["messages"]?.arrayValue?.first
        XCTAssertEqual(first?["channel"]?.stringValue, "c")
        XCTAssertEqual(first?["message"]?["deep"], .array([.array([.array([])])]))
    }

    func testAccessors() throws {
        let value = try parse("{\"s\":\"x\",\"b\":true,\"a\":[1]}")
        XCTAssertEqual(value["s"]?.stringValue, "x")
        XCTAssertEqual(value["b"]?.boolValue, true)
        XCTAssertEqual(value["a"]?.arrayValue, [.number("1")])
        XCTAssertNil(value["missing"])
        XCTAssertNil(value["s"]?.boolValue)
        XCTAssertNil(JSONValue.array([])["key"])
    }

    func testNumbersAreKeptAsTheirText() throws {
        for text in ["0", "-0", "12345678901234567890123", "3.14159", "-1.5e+10", "1E-7", "2e3", "0.000"] {
            XCTAssertEqual(try parse(text), .number(text), text)
            XCTAssertEqual(try parse(text).serialized, Array(text.utf8), text)
        }
    }

    func testBadNumbersThrow() {
        for text in ["01", "-", "1.", ".5", "1e", "1e+", "+1", "--1", "0x10", "1.2.3", "NaN", "Infinity"] {
            XCTAssertNotNil(parseError(text), text)
        }
    }

    func testEscapes() throws {
        XCTAssertEqual(try parse(#""\"\\\/\b\f\n\r\t""#), .string("\"\\/\u{8}\u{C}\n\r\t"))
        XCTAssertEqual(try parse(#""\u0041\u00e9\u20AC\u0000""#), .string("Aé€\u{0}"))
    }

    func testSurrogatePairEscapes() throws {
        XCTAssertEqual(try parse(#""\ud83d\ude00""#), .string("😀"))
        XCTAssertEqual(try parse(#""\uD834\uDD1E x""#), .string("𝄞 x"))
    }

    func testRawUTF8InStrings() throws {
        XCTAssertEqual(try parse("\"héllo 😀\""), .string("héllo 😀"))
    }

    func testLoneSurrogatesThrow() {
        for text in [#""\ud83d""#, #""\ud83d x""#, #""\ude00""#, #""\ud83d\u0041""#, #""\ud83d\ud83d""#] {
            XCTAssertNotNil(parseError(text), text)
        }
    }

    func testControlCharactersInStringsThrow() {
        for byte: UInt8 in [0x00, 0x01, 0x0A, 0x09, 0x1F] {
            XCTAssertNotNil(parseError([0x22, 0x61, byte, 0x22]), "byte \(byte)")
        }
    }

    func testInvalidUTF8InStringsThrows() {
        XCTAssertNotNil(parseError([0x22, 0xC0, 0xAF, 0x22]))
        XCTAssertNotNil(parseError([0x22, 0xFF, 0x22]))
    }

    func testMalformedDocumentsThrow() {
        for text in [
            "", "   ", "{", "[", "[1,]", "[1 2]", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}", "{'a':1}",
            "\"unterminated", "\"bad escape \\x\"", "\"\\u12\"", "\"\\u12G4\"", "tru", "nul", "True",
            "[1]x", "{} {}", "1 2", "\"a\" ,",
        ] {
            XCTAssertNotNil(parseError(text), text.debugDescription)
        }
    }

    func testTrailingGarbageReportsItsOffset() {
        XCTAssertEqual(parseError("{\"a\":1} x")?.offset, 8)
    }

    func testDepthLimitIs64() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertNoThrow(try parse(ok))
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        XCTAssertNotNil(parseError(deep))
        let objects = String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)
        XCTAssertNotNil(parseError(objects))
        // A hostile document must fail on the limit, not on the stack.
        XCTAssertNotNil(parseError(String(repeating: "[", count: 100_000)))
    }

    func testSerializedIsCompactAndKeepsKeyOrder() throws {
        let value = try parse(" { \"b\" : [ 1 , 2.50 ] , \"a\" : { \"z\" : null , \"y\" : false } , \"c\" : \"q\\\"\" } ")
        XCTAssertEqual(String(decoding: value.serialized, as: UTF8.self), #"{"b":[1,2.50],"a":{"z":null,"y":false},"c":"q\""}"#)
    }

    func testSerializedRoundTrip() throws {
        let texts = [
            #"{"id":7,"op":"subscribe","channels":["a","b\u0000c","é😀"],"nested":{"x":[true,false,null,-1.5e3]}}"#,
            #"["line\nbreak","tab\t","quote\"","back\\slash","\u001f"]"#,
            #""just a string""#,
            "[]",
        ]
        for text in texts {
            let value = try parse(text)
            XCTAssertEqual(try JSONValue.parse(value.serialized), value, text)
        }
    }
}
