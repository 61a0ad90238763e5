// PresenceMember and PresenceSnapshot: the member JSON Redis keeps and members see (which the
// scripts splice into events, so it must start with `{"`), and the answer of a presence read.
import Herald
import XCTest

final class PresenceMemberTests: XCTestCase {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    func testMemberJSON() throws {
        let info = try JSONValue.parse(Array(#"{"name":"Alice \"A\"","n":12345678901234567890}"#.utf8))
        let member = PresenceMember(client: "00ab", identity: PresenceIdentity(user: "alice", info: info), since: 1_700_000_000_123)
        let json = text(member.json)
        XCTAssertTrue(json.hasPrefix(#"{"client":"00ab","user":"alice","info":{"#), json)
        XCTAssertTrue(json.hasSuffix(#","since":1700000000123}"#), json)
        XCTAssertEqual(try JSONValue.parse(member.json)["info"], info, "info travels as given, big numbers included")
    }

    func testAnonymousMemberHasNullUserAndInfo() {
        let member = PresenceMember(client: "c1", identity: PresenceIdentity(), since: 5)
        XCTAssertEqual(text(member.json), #"{"client":"c1","user":null,"info":null,"since":5}"#)
    }

    func testUserIsEscaped() throws {
        let member = PresenceMember(client: "c", identity: PresenceIdentity(user: "a\"b\n\u{1}"), since: 0)
        XCTAssertEqual(try JSONValue.parse(member.json)["user"]?.stringValue, "a\"b\n\u{1}")
        XCTAssertEqual(text(PresenceMember.channelJSON("r\"m")), #""r\"m""#)
    }

    func testSnapshotFromTheReadScriptsAnswer() throws {
        let one = PresenceMember(client: "c1", identity: PresenceIdentity(user: "u"), since: 1).json
        let reply = RedisReply.array([.integer(3), .integer(1), .array([.string(one)])])
        let snapshot = try XCTUnwrap(PresenceSnapshot(channel: "room", reply: reply))
        XCTAssertEqual(snapshot.clients, 3)
        XCTAssertEqual(snapshot.users, 1)
        XCTAssertTrue(snapshot.truncated)
        var writer = JSONWriter()
        writer.object { snapshot.write(&$0) }
        let answer = try JSONValue.parse(writer.bytes)
        XCTAssertEqual(answer["clients"], .number("3"))
        XCTAssertEqual(answer["truncated"], .bool(true))
        XCTAssertEqual(answer["members"]?.arrayValue?.first?["client"]?.stringValue, "c1")
        XCTAssertNil(PresenceSnapshot(channel: "room", reply: .error("ERR")))
        XCTAssertNil(PresenceSnapshot(channel: "room", reply: .array([.integer(1)])))
    }
}
