// Glob.matches: the Redis glob syntax (`*`, `?`, `[...]`, `[^...]`, ranges, `\` escapes) that
// token claims use, with the backtracking cases a naive matcher gets wrong.
import Herald
import XCTest

final class GlobTests: XCTestCase {
    private func assertMatches(_ pattern: String, _ texts: [String], file: StaticString = #filePath, line: UInt = #line) {
        for text in texts {
            XCTAssertTrue(Glob.matches(pattern, text), "\(pattern) should match \(text)", file: file, line: line)
        }
    }

    private func assertRefuses(_ pattern: String, _ texts: [String], file: StaticString = #filePath, line: UInt = #line) {
        for text in texts {
            XCTAssertFalse(Glob.matches(pattern, text), "\(pattern) should not match \(text)", file: file, line: line)
        }
    }

    func testLiteralMatchesOnlyItself() {
        assertMatches("news", ["news"])
        assertRefuses("news", ["new", "newss", "News", "", "xnews"])
    }

    func testStarMatchesAnyRunIncludingEmpty() {
        assertMatches("*", ["", "a", "news.eu.fr", "*"])
        assertMatches("news.*", ["news.", "news.eu", "news.eu.fr"])
        assertRefuses("news.*", ["news", "new.eu", "xnews.eu"])
        assertMatches("*.fr", [".fr", "news.fr", "a.b.fr"])
        assertRefuses("*.fr", ["news.fr.x", "fr"])
        assertMatches("a**b", ["ab", "aXXb"])
    }

    func testQuestionMarkMatchesExactlyOneByte() {
        assertMatches("room-?", ["room-1", "room-x", "room-*"])
        assertRefuses("room-?", ["room-", "room-12"])
        assertMatches("??", ["ab"])
        assertRefuses("??", ["a", "abc", ""])
        // `?` counts bytes, not characters: "é" is two UTF-8 bytes.
        assertMatches("??", ["é"])
        assertRefuses("?", ["é"])
    }

    func testClassMatchesOneOfItsMembers() {
        assertMatches("h[ae]llo", ["hallo", "hello"])
        assertRefuses("h[ae]llo", ["hillo", "hllo", "haello"])
        assertMatches("[abc]", ["a", "b", "c"])
        assertRefuses("[abc]", ["d", "", "ab"])
    }

    func testRanges() {
        assertMatches("room-[a-c]", ["room-a", "room-b", "room-c"])
        assertRefuses("room-[a-c]", ["room-d", "room-A", "room-"])
        assertMatches("v[0-9][0-9]", ["v00", "v42", "v99"])
        assertRefuses("v[0-9][0-9]", ["v4", "v4x"])
        // A reversed range is read as its normal form, as Redis does.
        assertMatches("[z-a]", ["a", "m", "z"])
        // A `-` right before `]` is a literal.
        assertMatches("[a-]", ["a", "-"])
        assertRefuses("[a-]", ["b"])
    }

    func testNegatedClass() {
        assertMatches("[^a]", ["b", "z", "-"])
        assertRefuses("[^a]", ["a", "", "bb"])
        assertMatches("x[^0-9]", ["xa", "x-"])
        assertRefuses("x[^0-9]", ["x0", "x5", "x9"])
    }

    func testEscapesMakeMetacharactersLiteral() {
        assertMatches(#"a\*"#, ["a*"])
        assertRefuses(#"a\*"#, ["a", "ab", #"a\*"#])
        assertMatches(#"\?"#, ["?"])
        assertRefuses(#"\?"#, ["x"])
        assertMatches(#"\[x]"#, ["[x]"])
        assertRefuses(#"\[x]"#, ["x"])
        assertMatches(#"a\\b"#, [#"a\b"#])
        assertMatches(#"[\]]"#, ["]"])
        assertMatches(#"\n"#, ["n"])
    }

    func testEmptyPatternAndEmptyText() {
        XCTAssertTrue(Glob.matches("", ""))
        XCTAssertFalse(Glob.matches("", "a"))
        XCTAssertFalse(Glob.matches("a", ""))
        XCTAssertTrue(Glob.matches("*", ""))
        XCTAssertTrue(Glob.matches("***", ""))
        XCTAssertFalse(Glob.matches("?", ""))
        XCTAssertFalse(Glob.matches("[a]", ""))
    }

    func testBacktracking() {
        assertMatches("a*b*c", ["aXbYbZc", "abc", "abbbc", "abcbc", "aXbYc"])
        assertRefuses("a*b*c", ["aXbYbZ", "acb", "aXcYc", "bac"])
        assertMatches("*a*a*a*b", ["aaaaaaaaaaaaaaaaaaaab", "xaxaxab"])
        assertRefuses("*a*a*a*b", ["aaaaaaaaaaaaaaaaaaaaa", "aab"])
        assertMatches("*?x", ["ax", "aaax"])
        assertRefuses("*?x", ["x"])
        assertMatches("news.*.fr", ["news.eu.fr", "news..fr", "news.a.fr.b.fr"])
        assertRefuses("news.*.fr", ["news.fr", "news.eu.fr.x"])
    }

    func testBacktrackingOnALongTextStaysFast() {
        let text = String(repeating: "a", count: 2000)
        let start = Date()
        XCTAssertFalse(Glob.matches("*a*a*a*a*a*b", text))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, "matching must not blow up exponentially")
    }

    func testUnterminatedClassMatchesNothing() {
        assertRefuses("[abc", ["a", "[abc", "", "abc"])
        assertRefuses("room-[", ["room-", "room-[", "room-x"])
        assertRefuses("[^a", ["b", "[^a"])
        assertRefuses("*[", ["x", "[", ""])
    }
}
