// PresenceKeys: each channel gets keys of its own, both in one hash slot (the scripts touch
// both, on a Redis Cluster too), in Herald's reserved space, with the event channel told apart.
import Herald
import XCTest

final class PresenceKeysTests: XCTestCase {
    private func slot(_ key: String) -> Int { SlotHash.slot(Array(key.utf8)) }

    func testKeyForms() {
        let keys = PresenceKeys(channel: "room")
        XCTAssertEqual(keys.members, "herald:presence:{room}:4:room")
        XCTAssertEqual(keys.leases, "herald:presence-leases:{room}:4:room")
        XCTAssertEqual(keys.events, "herald:presence-events:{room}:4:room")
        XCTAssertEqual(PresenceKeys(channel: "chat{eu}").members, "herald:presence:{eu}:8:chat{eu}")
        XCTAssertEqual(PresenceKeys(channel: "é").members, "herald:presence:{é}:2:é", "the length counts bytes")
    }

    func testBothKeysShareTheChannelSlot() {
        for channel in ["room", "a}b", "}", "{}", "{eu}x", "x{eu}", "a:b", "0", "{a}{b}"] {
            let keys = PresenceKeys(channel: channel)
            XCTAssertEqual(slot(keys.members), slot(keys.leases), channel)
            XCTAssertEqual(slot(keys.members), slot(channel), "\(channel): the channel's own slot")
        }
    }

    func testNoTwoChannelsShareKeys() {
        // Pairs that a form without the length would merge.
        let names = ["a", "a}b", "b", "{a}", "{a}:1:a", "1:a", "a:1", "eu}:jobs{eu}", "jobs{eu}", "", "é", "e\u{301}"]
        var seen: [String: String] = [:]
        for name in names {
            let members = PresenceKeys(channel: name).members
            XCTAssertNil(seen[members], "\(name) and \(seen[members] ?? "") share \(members)")
            seen[members] = name
        }
    }

    func testEventChannelsAreTold() {
        XCTAssertTrue(PresenceKeys.isEventChannel(PresenceKeys(channel: "room").events))
        XCTAssertFalse(PresenceKeys.isEventChannel("room"))
        XCTAssertFalse(PresenceKeys.isEventChannel("herald:presence:{room}:4:room"))
        XCTAssertTrue(InternalKeys.isReserved(RedisName(PresenceKeys(channel: "room").members)))
    }
}
