// ClusterMap, Redirect and RedisEndpoint.node: the slot table read from a CLUSTER SLOTS reply,
// patched by MOVED, the MOVED/ASK error parser, and per-node endpoints keeping credentials.
import Herald
import XCTest

final class ClusterMapTests: XCTestCase {
    /// One CLUSTER SLOTS range: `[start, end, [host, port, id], replicas...]`.
    private func range(_ start: Int, _ end: Int, _ host: String, _ port: Int, replica: Int? = nil) -> RedisReply {
        var parts: [RedisReply] = [
            .integer(start), .integer(end),
            .array([.string(Array(host.utf8)), .integer(port), .string(Array("id-\(port)".utf8))]),
        ]
        if let replica {
            parts.append(.array([.string(Array(host.utf8)), .integer(replica), .string(Array("id-\(replica)".utf8))]))
        }
        return .array(parts)
    }

    /// The three-master layout `redis-cli --cluster create` makes.
    private var threeMasters: RedisReply {
        .array([
            range(0, 5460, "127.0.0.1", 7000, replica: 7003),
            range(5461, 10922, "127.0.0.1", 7001, replica: 7004),
            range(10923, 16383, "127.0.0.1", 7002, replica: 7005),
        ])
    }

    func testBuildsFromThreeRanges() throws {
        let map = try XCTUnwrap(ClusterMap(slotsReply: threeMasters))
        XCTAssertEqual(map.nodes, ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"])
        XCTAssertEqual(map.owner(of: 0), "127.0.0.1:7000")
        XCTAssertEqual(map.owner(of: 5460), "127.0.0.1:7000")
        XCTAssertEqual(map.owner(of: 5461), "127.0.0.1:7001")
        XCTAssertEqual(map.owner(of: 10922), "127.0.0.1:7001")
        XCTAssertEqual(map.owner(of: 10923), "127.0.0.1:7002")
        XCTAssertEqual(map.owner(of: 16383), "127.0.0.1:7002")
        XCTAssertEqual(map.owner(of: SlotHash.slot(Array("foo".utf8))), "127.0.0.1:7002", "foo is slot 12182")
        XCTAssertTrue(map.coversAllSlots)
        XCTAssertFalse(map.nodes.contains("127.0.0.1:7003"), "replicas are not masters")
    }

    func testAMasterWithSeveralRangesIsOneNode() throws {
        let reply = RedisReply.array([
            range(0, 99, "10.0.0.1", 6379), range(100, 16283, "10.0.0.2", 6379),
            range(16284, 16383, "10.0.0.1", 6379),
        ])
        let map = try XCTUnwrap(ClusterMap(slotsReply: reply))
        XCTAssertEqual(map.nodes, ["10.0.0.1:6379", "10.0.0.2:6379"])
        XCTAssertEqual(map.owner(of: 16383), "10.0.0.1:6379")
        XCTAssertTrue(map.coversAllSlots)
    }

    func testSingleSlotRanges() throws {
        let map = try XCTUnwrap(ClusterMap(slotsReply: .array([range(7, 7, "h", 1)])))
        XCTAssertEqual(map.owner(of: 7), "h:1")
        XCTAssertNil(map.owner(of: 6))
        XCTAssertNil(map.owner(of: 8))
    }

    func testGapsAreUnowned() throws {
        let reply = RedisReply.array([range(0, 5460, "127.0.0.1", 7000), range(10923, 16383, "127.0.0.1", 7002)])
        let map = try XCTUnwrap(ClusterMap(slotsReply: reply))
        XCTAssertNil(map.owner(of: 5461))
        XCTAssertNil(map.owner(of: 10922))
        XCTAssertFalse(map.coversAllSlots)
    }

    func testEmptyHostMeansTheNodeWeAsked() throws {
        // Redis reports an empty host when it does not know its own address.
        let map = try XCTUnwrap(ClusterMap(slotsReply: .array([range(0, 16383, "", 7000)])))
        XCTAssertEqual(map.owner(of: 42), "127.0.0.1:7000")
    }

    func testHostAsStatusReplyIsAccepted() throws {
        let reply = RedisReply.array([.array([.integer(0), .integer(16383), .array([.status("10.0.0.9"), .integer(7000)])])])
        XCTAssertEqual(try XCTUnwrap(ClusterMap(slotsReply: reply)).owner(of: 0), "10.0.0.9:7000")
    }

    func testMovedPatchesOneSlot() throws {
        var map = try XCTUnwrap(ClusterMap(slotsReply: threeMasters))
        map.moved(slot: 3999, to: "127.0.0.1:7002")
        XCTAssertEqual(map.owner(of: 3999), "127.0.0.1:7002")
        XCTAssertEqual(map.owner(of: 3998), "127.0.0.1:7000")
        XCTAssertEqual(map.owner(of: 4000), "127.0.0.1:7000")
        XCTAssertEqual(map.nodes.count, 3)
        map.moved(slot: 0, to: "127.0.0.1:7006")
        XCTAssertEqual(map.owner(of: 0), "127.0.0.1:7006")
        XCTAssertEqual(map.nodes, ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7006"])
        XCTAssertTrue(map.coversAllSlots)
    }

    func testMovedFillsAGap() throws {
        var map = try XCTUnwrap(ClusterMap(slotsReply: .array([range(0, 16382, "h", 1)])))
        XCTAssertFalse(map.coversAllSlots)
        map.moved(slot: 16383, to: "h:2")
        XCTAssertTrue(map.coversAllSlots)
    }

    func testEmptyMap() {
        let map = ClusterMap()
        XCTAssertEqual(map.nodes, [])
        XCTAssertNil(map.owner(of: 0))
        XCTAssertFalse(map.coversAllSlots)
    }

    func testMalformedRepliesGiveNil() {
        let host = RedisReply.string(Array("127.0.0.1".utf8))
        let master = RedisReply.array([host, .integer(7000)])
        let malformed: [(String, RedisReply)] = [
            ("an error", .error("ERR This instance has cluster support disabled")),
            ("a status", .status("OK")),
            ("null", .null),
            ("no ranges", .array([])),
            ("a range that is not an array", .array([.integer(0)])),
            ("a range without its master", .array([.array([.integer(0), .integer(16383)])])),
            ("a start that is not an integer", .array([.array([.string(Array("0".utf8)), .integer(16383), master])])),
            ("an end that is not an integer", .array([.array([.integer(0), .null, master])])),
            ("an end past the last slot", .array([.array([.integer(0), .integer(16384), master])])),
            ("a negative start", .array([.array([.integer(-1), .integer(10), master])])),
            ("start after end", .array([.array([.integer(10), .integer(9), master])])),
            ("a master that is not an array", .array([.array([.integer(0), .integer(16383), host])])),
            ("a master without a port", .array([.array([.integer(0), .integer(16383), .array([host])])])),
            (
                "a port that is not an integer",
                .array([.array([.integer(0), .integer(16383), .array([host, .string(Array("7000".utf8))])])])
            ),
            ("a host that is not a string", .array([.array([.integer(0), .integer(16383), .array([.integer(1), .integer(7000)])])])),
            ("one good range and one bad", .array([range(0, 5460, "127.0.0.1", 7000), .array([.integer(5461)])])),
        ]
        for (why, reply) in malformed {
            XCTAssertNil(ClusterMap(slotsReply: reply), why)
        }
    }

    // MARK: Redirect

    func testMoved() throws {
        let r = try XCTUnwrap(Redirect("MOVED 3999 127.0.0.1:6381"))
        XCTAssertEqual(r.kind, .moved)
        XCTAssertEqual(r.slot, 3999)
        XCTAssertEqual(r.address, "127.0.0.1:6381")
    }

    func testAsk() throws {
        let r = try XCTUnwrap(Redirect("ASK 3999 127.0.0.1:6381"))
        XCTAssertEqual(r.kind, .ask)
        XCTAssertEqual(r.slot, 3999)
        XCTAssertEqual(r.address, "127.0.0.1:6381")
    }

    func testHostlessAddressMeansTheSameHost() throws {
        // Redis 7 sends `:port` when the node's announced endpoint is unknown.
        XCTAssertEqual(Redirect("MOVED 3999 :6380")?.address, "127.0.0.1:6380")
        XCTAssertEqual(Redirect("ASK 0 :6380"), Redirect("ASK 0 127.0.0.1:6380"))
    }

    func testEdgeSlots() {
        XCTAssertEqual(Redirect("MOVED 0 h:1")?.slot, 0)
        XCTAssertEqual(Redirect("MOVED 16383 h:1")?.slot, 16383)
    }

    func testGarbageIsNotARedirect() {
        for error in [
            "", "MOVED", "MOVED 3999", "MOVED x 127.0.0.1:6381", "MOVED 3999 127.0.0.1:6381 extra",
            "ERR unknown command", "WRONGTYPE Operation against a key holding the wrong kind of value",
            "moved 3999 127.0.0.1:6381", "CLUSTERDOWN Hash slot not served", "TRYAGAIN 1 2",
        ] {
            XCTAssertNil(Redirect(error), error)
        }
    }

    func testSlotOutsideTheTableIsNotARedirect() {
        // ClusterCommands feeds a MOVED slot straight into ClusterMap.moved(slot:), which
        // indexes a 16384-entry table: a slot outside 0...16383 must not get that far.
        for error in ["MOVED 16384 127.0.0.1:6381", "MOVED -1 127.0.0.1:6381", "ASK 99999 127.0.0.1:6381"] {
            XCTAssertNil(Redirect(error), error)
        }
    }

    // MARK: RedisEndpoint.node

    func testNodeKeepsCredentialsAndUsesDatabaseZero() {
        let seed = RedisEndpoint(host: "10.0.0.1", port: 7000, username: "app", password: "s3cret", database: 3)
        let node = seed.node("10.0.0.2:7001")
        XCTAssertEqual(node, RedisEndpoint(host: "10.0.0.2", port: 7001, username: "app", password: "s3cret", database: 0))
        XCTAssertEqual(node.address, "10.0.0.2:7001")
        XCTAssertEqual(seed.address, "10.0.0.1:7000")
    }

    func testNodeFromARedirectAddress() throws {
        let seed = RedisEndpoint(host: "127.0.0.1", port: 7000, password: "pw")
        let redirect = try XCTUnwrap(Redirect("MOVED 3999 :6380"))
        XCTAssertEqual(seed.node(redirect.address), RedisEndpoint(host: "127.0.0.1", port: 6380, password: "pw"))
    }

    func testNodeWithAnIPv6Address() {
        let node = RedisEndpoint(host: "::1", port: 7000).node("::1:7001")
        XCTAssertEqual(node.host, "::1")
        XCTAssertEqual(node.port, 7001)
    }
}
