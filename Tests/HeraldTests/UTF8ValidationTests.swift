// UTF8Validation: RFC 3629 exactly (no overlongs, no surrogates, nothing above U+10FFFF).
import Herald
import XCTest

final class UTF8ValidationTests: XCTestCase {
    func testValidText() {
        for text in ["", "ascii", "é", "€", "😀", "κόσμε", "\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}", "\u{D7FF}\u{E000}"] {
            XCTAssertTrue(UTF8Validation.isValid(Array(text.utf8)), text.debugDescription)
        }
    }

    func testBoundaryEncodings() {
        XCTAssertTrue(UTF8Validation.isValid([0xC2, 0x80]))
        XCTAssertTrue(UTF8Validation.isValid([0xE0, 0xA0, 0x80]))
        XCTAssertTrue(UTF8Validation.isValid([0xED, 0x9F, 0xBF]))
        XCTAssertTrue(UTF8Validation.isValid([0xF0, 0x90, 0x80, 0x80]))
        XCTAssertTrue(UTF8Validation.isValid([0xF4, 0x8F, 0xBF, 0xBF]))
    }

    func testOverlongEncodingsAreInvalid() {
        for bytes: [UInt8] in [[0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xE0, 0x9F, 0xBF], [0xF0, 0x80, 0x80, 0xAF], [0xF0, 0x8F, 0xBF, 0xBF]] {
            XCTAssertFalse(UTF8Validation.isValid(bytes), "\(bytes)")
        }
    }

    func testSurrogatesAreInvalid() {
        for bytes: [UInt8] in [[0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]] {
            XCTAssertFalse(UTF8Validation.isValid(bytes), "\(bytes)")
        }
    }

    func testAboveU10FFFFIsInvalid() {
        for bytes: [UInt8] in [
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xF7, 0xBF, 0xBF, 0xBF], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0xFE],
        ] {
            XCTAssertFalse(UTF8Validation.isValid(bytes), "\(bytes)")
        }
    }

    func testTruncatedSequencesAreInvalid() {
        for bytes: [UInt8] in [[0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0x61, 0xE2], [0xE2, 0x82, 0x61], [0xF0, 0x9F, 0x61, 0x80]] {
            XCTAssertFalse(UTF8Validation.isValid(bytes), "\(bytes)")
        }
    }

    func testStrayContinuationBytesAreInvalid() {
        for bytes: [UInt8] in [[0x80], [0x61, 0xBF], [0xC3, 0xA9, 0xA9]] {
            XCTAssertFalse(UTF8Validation.isValid(bytes), "\(bytes)")
        }
    }

    func testWorksOnSlices() {
        let bytes: [UInt8] = [0xFF, 0x68, 0xC3, 0xA9, 0xFF]
        XCTAssertTrue(UTF8Validation.isValid(bytes[1..<4]))
        XCTAssertFalse(UTF8Validation.isValid(bytes[1...]))
    }
}
