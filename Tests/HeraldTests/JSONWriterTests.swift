// JSONWriter: string escaping and the object/array writers every envelope is built with.
import Herald
import XCTest

final class JSONWriterTests: XCTestCase {
    private func quoted(_ value: String) -> String {
        var writer = JSONWriter()
        writer.string(value)
        return writer.string
    }

    func testEscapesQuotesAndBackslashes() {
        XCTAssertEqual(quoted(#"say "hi" \ bye"#), #""say \"hi\" \\ bye""#)
    }

    func testEscapesControlCharacters() {
        XCTAssertEqual(quoted("a\nb\rc\td"), #""a\nb\rc\td""#)
        XCTAssertEqual(quoted("\u{0}\u{1}\u{8}\u{C}\u{1F}"), #""\u0000\u0001\u0008\u000c\u001f""#)
        XCTAssertEqual(quoted("\u{7F}"), #""\u007f""#)
    }

    func testLeavesUnicodeAndSlashAlone() {
        XCTAssertEqual(quoted("é€😀 a/b"), "\"é€😀 a/b\"")
    }

    func testEscapedOutputParsesBackToTheSameString() throws {
        var all = ""
        for scalar in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(scalar))) }
        all += "é😀"
        var writer = JSONWriter()
        writer.string(all)
        XCTAssertEqual(try JSONValue.parse(writer.bytes), .string(all))
    }

    func testObjectFields() {
        var writer = JSONWriter()
        writer.object { o in
            o.field("s", "x\"y")
            o.field("n", -3)
            o.field("t", true)
            o.field("f", false)
            o.field("list", strings: ["a", "b\\"])
            o.field("empty", strings: [])
            o.field("raw", json: Array("{\"k\":[1]}".utf8))
            o.field("bytes", utf8: Array("tab\t".utf8))
        }
        XCTAssertEqual(writer.string, #"{"s":"x\"y","n":-3,"t":true,"f":false,"list":["a","b\\"],"empty":[],"raw":{"k":[1]},"bytes":"tab\t"}"#)
    }

    func testEmptyObject() {
        var writer = JSONWriter()
        writer.object { _ in }
        XCTAssertEqual(writer.string, "{}")
    }

    func testObjectsField() {
        var writer = JSONWriter()
        writer.object { o in
            o.field(
                "results",
                objects: [
                    {
                        $0.field("channel", "a"); $0.field("receivers", 1)
                    },
                    {
                        $0.field("channel", "b"); $0.field("receivers", 0)
                    },
                ])
            o.field("after", 1)
        }
        XCTAssertEqual(writer.string, #"{"results":[{"channel":"a","receivers":1},{"channel":"b","receivers":0}],"after":1}"#)
    }

    func testWriterKeepsWhatWasWrittenBeforeAnObject() {
        var writer = JSONWriter()
        writer.raw("[")
        writer.object { $0.field("a", 1) }
        writer.raw(",")
        writer.object { $0.field("b", 2) }
        writer.raw("]")
        XCTAssertEqual(writer.string, #"[{"a":1},{"b":2}]"#)
    }
}
