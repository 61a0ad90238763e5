// StreamID, StreamPosition and ISOTime: entry ids as Redis orders them, every `from=` form the
// README documents, and exact epoch milliseconds for ISO-8601 times (checked with Python's
// datetime), with impossible dates refused rather than rolled over.
import Herald
import XCTest

final class StreamIDTests: XCTestCase {
    // MARK: StreamID

    func testParsesMsAndSeq() {
        XCTAssertEqual(StreamID("1732460000000-3"), StreamID(ms: 1_732_460_000_000, seq: 3))
        XCTAssertEqual(StreamID("0-1"), StreamID(ms: 0, seq: 1))
        XCTAssertEqual(StreamID("18446744073709551615-18446744073709551615"), StreamID(ms: .max, seq: .max))
    }

    func testMsAloneMeansSeqZero() {
        XCTAssertEqual(StreamID("5"), StreamID(ms: 5, seq: 0))
        XCTAssertEqual(StreamID("0"), .zero)
    }

    func testRefusesWhatIsNotAnID() {
        for text in [
            "", "-", "1-", "-1", "1-2-3", "a-1", "1-b", " 1-2", "1-2 ", "1.5-0", "0x10-0", "$", "*", "1-*",
            "18446744073709551616-0", "0-18446744073709551616", "１-2",
        ] {
            XCTAssertNil(StreamID(text), text)
        }
    }

    func testDescriptionIsTheRedisForm() {
        XCTAssertEqual(StreamID(ms: 1_732_460_000_000, seq: 0).description, "1732460000000-0")
        XCTAssertEqual(StreamID("7")?.description, "7-0")
        XCTAssertEqual("\(StreamID.zero)", "0-0")
    }

    func testOrdersByMsThenSeq() {
        XCTAssertLessThan(StreamID(ms: 1, seq: 5), StreamID(ms: 2, seq: 0))
        XCTAssertLessThan(StreamID(ms: 1, seq: 5), StreamID(ms: 1, seq: 6))
        XCTAssertFalse(StreamID(ms: 1, seq: 5) < StreamID(ms: 1, seq: 5))
        XCTAssertGreaterThan(StreamID(ms: 10, seq: 0), StreamID(ms: 9, seq: .max))
        let ids = ["10-0", "2-1", "2-0", "9-99", "0-0"].compactMap(StreamID.init)
        XCTAssertEqual(ids.sorted().map(\.description), ["0-0", "2-0", "2-1", "9-99", "10-0"])
        XCTAssertEqual(Set(["1-0", "1", "1-1"].compactMap(StreamID.init)).count, 2)
    }

    // MARK: StreamPosition

    func testZeroAndDashMeanEverything() {
        XCTAssertEqual(StreamPosition.parse("0"), .after(.zero))
        XCTAssertEqual(StreamPosition.parse("-"), .after(.zero))
    }

    func testDollarMeansOnlyNew() {
        XCTAssertEqual(StreamPosition.parse("$"), .newOnly)
    }

    func testAnIDIsExclusive() {
        XCTAssertEqual(StreamPosition.parse("1732460000000-3"), .after(StreamID(ms: 1_732_460_000_000, seq: 3)))
        XCTAssertEqual(StreamPosition.parse("0-1"), .after(StreamID(ms: 0, seq: 1)))
    }

    func testDigitsAreATimeInMilliseconds() {
        XCTAssertEqual(StreamPosition.parse("1732460000000"), .time(1_732_460_000_000))
        XCTAssertEqual(StreamPosition.parse("1"), .time(1))
    }

    func testISOTimesAreTimes() {
        XCTAssertEqual(StreamPosition.parse("2024-11-24T12:00:00Z"), .time(1_732_449_600_000))
        XCTAssertEqual(StreamPosition.parse("2024-11-24T12:00:00+05:30"), .time(1_732_429_800_000))
        XCTAssertEqual(StreamPosition.parse("2024-11-24T12:00:00.5Z"), .time(1_732_449_600_500))
        XCTAssertEqual(StreamPosition.parse("2024-11-24"), .time(1_732_406_400_000))
        XCTAssertEqual(StreamPosition.parse("2024-11-24 12:00:00Z"), .time(1_732_449_600_000))
        XCTAssertEqual(StreamPosition.parse("2024-11-24t12:00:00z"), .time(1_732_449_600_000))
    }

    func testJunkIsRefused() {
        for text in [
            "", " ", "abc", "now", "$$", "+", "-1", "1-2-3", "1-2T", "1.5", "0x10", "1e3", " 0", "0 ",
            "99999999999999999999", "2024-02-30", "2024-11-24T25:00:00Z", "2024-11-24T12:00:00Zjunk",
        ] {
            XCTAssertNil(StreamPosition.parse(text), "'\(text)'")
        }
    }

    // MARK: ISOTime

    func testEpoch() {
        XCTAssertEqual(ISOTime.milliseconds("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(ISOTime.milliseconds("1970-01-01"), 0)
        XCTAssertEqual(ISOTime.milliseconds("1970-01-01T00:00:01Z"), 1000)
        XCTAssertEqual(ISOTime.milliseconds("1970-01-01T01:00:00+01:00"), 0)
    }

    func testExactValues() {
        // python3: round(datetime.fromisoformat(s).timestamp() * 1000)
        XCTAssertEqual(ISOTime.milliseconds("2000-02-29T12:34:56.789+02:00"), 951_820_496_789)
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00Z"), 1_732_449_600_000)
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00-05:00"), 1_732_467_600_000)
        XCTAssertEqual(ISOTime.milliseconds("2024-12-31T23:59:59.999Z"), 1_735_689_599_999)
        XCTAssertEqual(ISOTime.milliseconds("2100-01-01T00:00:00Z"), 4_102_444_800_000)
        XCTAssertEqual(ISOTime.milliseconds("9999-12-31T23:59:59Z"), 253_402_300_799_000)
    }

    func testDateOnlyIsMidnightUTC() {
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24"), 1_732_406_400_000)
        XCTAssertEqual(ISOTime.milliseconds("2024-02-29"), 1_709_164_800_000)
    }

    func testSecondsMayBeLeftOut() {
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00Z"), 1_732_449_600_000)
    }

    func testFractions() {
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00.5Z"), 1_732_449_600_500)
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00.05Z"), 1_732_449_600_050)
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00,25Z"), 1_732_449_600_250, "ISO 8601 allows a comma")
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00.123456Z"), 1_732_449_600_123, "truncated to ms")
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00.999999999Z"), 1_732_449_600_999)
        XCTAssertNil(ISOTime.milliseconds("2024-11-24T12:00:00.Z"))
    }

    func testOffsetForms() {
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00+05:30"), 1_732_429_800_000)
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00+0530"), 1_732_429_800_000, "basic format offset")
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00+00:00"), ISOTime.milliseconds("2024-11-24T12:00:00Z"))
        XCTAssertEqual(ISOTime.milliseconds("2024-11-24T12:00:00-00:00"), ISOTime.milliseconds("2024-11-24T12:00:00Z"))
        XCTAssertNil(ISOTime.milliseconds("2024-11-24T12:00:00+24:00"))
        XCTAssertNil(ISOTime.milliseconds("2024-11-24T12:00:00+05:60"))
        XCTAssertNil(ISOTime.milliseconds("2024-11-24T12:00:00+5:30"))
    }

    func testLeapYears() {
        XCTAssertNotNil(ISOTime.milliseconds("2000-02-29"), "divisible by 400")
        XCTAssertNotNil(ISOTime.milliseconds("2024-02-29"))
        XCTAssertNil(ISOTime.milliseconds("2023-02-29"))
        XCTAssertNil(ISOTime.milliseconds("2100-02-29"), "divisible by 100, not by 400")
    }

    func testImpossibleDatesAndTimesAreRefused() {
        for text in [
            "2023-02-29", "2024-02-30", "2024-04-31", "2024-13-01", "2024-00-10", "2024-01-00", "2024-01-32",
            "2024-11-24T25:00:00Z", "2024-11-24T24:30:00Z", "2024-11-24T12:60Z", "2024-11-24T12:60:00Z",
            "2024-11-24T12:00:61Z", "2024-02-30T00:00:00Z",
        ] {
            XCTAssertNil(ISOTime.milliseconds(text), text)
        }
    }

    func testMalformedTextIsRefused() {
        for text in [
            "", "2024", "2024-11", "2024-1-24", "24-11-24", "2024/11/24", "2024-11-24T", "2024-11-24T12",
            "2024-11-24T1:00:00Z", "2024-11-24X12:00:00Z", "2024-11-24x",
            " 2024-11-24", "2024-11-24 ", "2024-11-24T12:00:00Z ", "+2024-11-24", "２０２４-11-24",
        ] {
            XCTAssertNil(ISOTime.milliseconds(text), "'\(text)'")
        }
    }

    func testTimesBeforeTheEpochAreRefused() {
        XCTAssertNil(ISOTime.milliseconds("1969-12-31T23:59:59Z"))
        XCTAssertNil(ISOTime.milliseconds("1970-01-01T00:30:00+01:00"))
    }
}
