// SlotHash: CRC16/XMODEM key slots and hash tags, checked against the numbers a real Redis
// Cluster node gives (`redis-cli CLUSTER KEYSLOT <key>` on redis-server 7 with
// `--cluster-enabled yes`).
import Herald
import XCTest

final class SlotHashTests: XCTestCase {
    private func slot(_ key: String) -> Int { SlotHash.slot(Array(key.utf8)) }

    func testCRC16XMODEMCheckValue() {
        // The CRC catalogue's check value for CRC-16/XMODEM, as in Redis's crc16.c.
        XCTAssertEqual(SlotHash.crc16(Array("123456789".utf8)), 0x31C3)
        XCTAssertEqual(SlotHash.crc16([UInt8]()), 0)
    }

    func testKnownSlots() {
        XCTAssertEqual(slot("foo"), 12182)
        XCTAssertEqual(slot("news"), 5161)
        XCTAssertEqual(slot("bar"), 5061)
        XCTAssertEqual(slot("orders"), 105)
        XCTAssertEqual(slot("chat.room-7"), 14305)
        XCTAssertEqual(slot("123456789"), 12739)
        XCTAssertEqual(slot(""), 0)
    }

    func testHashTagsShareASlot() {
        XCTAssertEqual(slot("{user1}.following"), 8106)
        XCTAssertEqual(slot("{user1}.followers"), 8106)
        XCTAssertEqual(slot("user1"), 8106)
        XCTAssertEqual(slot("a{b}c"), 3300)
        XCTAssertEqual(slot("b"), 3300)
    }

    func testOnlyTheFirstTagCounts() {
        XCTAssertEqual(slot("{a}{b}"), 15495)
        XCTAssertEqual(slot("a"), 15495)
    }

    func testEmptyTagHashesTheWholeKey() {
        XCTAssertEqual(slot("{}"), 15257)
        XCTAssertEqual(slot("foo{}"), 5542)
        // The first `{` is followed by `}`: the tag is empty, so the whole key counts, even
        // though `{bar}` comes later.
        XCTAssertEqual(slot("foo{}{bar}"), 8363)
        XCTAssertNotEqual(slot("foo{}{bar}"), slot("bar"))
        XCTAssertEqual(slot("{}}x"), 1961)
    }

    func testTagRunsFromTheFirstOpenToTheNextClose() {
        // `foo{{bar}}`: the tag is `{bar`, between the first `{` and the first `}` after it.
        XCTAssertEqual(slot("foo{{bar}}"), 4015)
        XCTAssertEqual(slot("{bar"), 4015)
    }

    func testUnclosedBraceHashesTheWholeKey() {
        XCTAssertEqual(slot("user{"), 13860)
        XCTAssertEqual(slot("x{y"), 2740)
    }

    func testLoneBraces() {
        XCTAssertEqual(slot("{"), 4092)
        XCTAssertEqual(slot("}"), 12090)
    }

    func testSlotsAreInRange() {
        for key in ["", "a", "{", "}", "{}", String(repeating: "z", count: 1000)] {
            XCTAssertTrue((0..<SlotHash.slotCount).contains(slot(key)), key)
        }
        XCTAssertEqual(SlotHash.slotCount, 16384)
    }

    func testBinaryKeys() {
        XCTAssertEqual(SlotHash.slot([0xFF, UInt8(ascii: "{"), UInt8(ascii: "a"), UInt8(ascii: "}"), 0x01]), 15495)
    }

    func testTagPutsAKeyInTheSameSlotAsTheName() {
        XCTAssertEqual(SlotHash.tag(of: "jobs"), "jobs")
        XCTAssertEqual(SlotHash.tag(of: "jobs{eu}-1"), "eu")
        XCTAssertNil(SlotHash.tag(of: "a{}b"), "an empty tag does not count; the whole name, } included, is hashed")
        XCTAssertEqual(SlotHash.tag(of: "{x}{y}"), "x")
        XCTAssertNil(SlotHash.tag(of: "a}b"), "no {T} can hold a name with } outside a tag")
    }
}
