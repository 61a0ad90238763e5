// RedisEndpoint.parse / parseList: every URL form the README documents, and the refusals.
import Herald
import XCTest

final class RedisEndpointTests: XCTestCase {
    private func refusal(_ url: String) -> String? {
        do throws(ConfigError) {
            _ = try RedisEndpoint.parse(url)
            return nil
        } catch {
            XCTAssertEqual(error.option, "--redis")
            XCTAssertEqual(error.value, url)
            return error.reason
        }
    }

    func testHostOnly() throws {
        XCTAssertEqual(try RedisEndpoint.parse("redis://cache"), RedisEndpoint(host: "cache", port: 6379))
        XCTAssertEqual(try RedisEndpoint.parse("redis://cache/"), RedisEndpoint(host: "cache", port: 6379))
    }

    func testPasswordPortAndDatabase() throws {
        let e = try RedisEndpoint.parse("redis://:pw@host:6380/3")
        XCTAssertEqual(e, RedisEndpoint(host: "host", port: 6380, username: nil, password: "pw", database: 3))
    }

    func testUserAndPassword() throws {
        XCTAssertEqual(try RedisEndpoint.parse("redis://user:pw@host"), RedisEndpoint(host: "host", username: "user", password: "pw"))
        XCTAssertEqual(try RedisEndpoint.parse("redis://user@host"), RedisEndpoint(host: "host", username: "user"))
    }

    func testPercentEncodedCredentials() throws {
        let e = try RedisEndpoint.parse("redis://us%3Aer:p%40ss%3Aw%2Fd@host")
        XCTAssertEqual(e.username, "us:er")
        XCTAssertEqual(e.password, "p@ss:w/d")
        XCTAssertEqual(try RedisEndpoint.parse("redis://:a:b@host").password, "a:b")
        XCTAssertEqual(try RedisEndpoint.parse("redis://:p@ss@host").password, "p@ss", "the last @ ends the credentials")
        XCTAssertNotNil(refusal("redis://:p%zz@host"))
    }

    func testIPv6() throws {
        XCTAssertEqual(try RedisEndpoint.parse("redis://[::1]:6379"), RedisEndpoint(host: "::1", port: 6379))
        XCTAssertEqual(try RedisEndpoint.parse("redis://[::1]"), RedisEndpoint(host: "::1", port: 6379))
        XCTAssertEqual(try RedisEndpoint.parse("redis://:pw@[fe80::1]:7000/1"), RedisEndpoint(host: "fe80::1", port: 7000, password: "pw", database: 1))
        XCTAssertNotNil(refusal("redis://[::1"))
        XCTAssertNotNil(refusal("redis://[::1]x"))
    }

    func testDescriptionHidesCredentials() throws {
        let e = try RedisEndpoint.parse("redis://u:secret@h:1/2")
        XCTAssertEqual(e.description, "h:1/2")
        XCTAssertFalse(e.description.contains("secret"))
    }

    func testRefusals() {
        for url in [
            "http://host", "redisss://host", "rediss:/host", "rediss//host", "host:6379", "redis://host:0", "redis://host:65536", "redis://host:abc",
            "redis://host:", "redis://host/x", "redis://host/-1", "redis://host/99999", "redis://", "redis://:6379",
            "redis://:pw@", "redis://:pw@/1", "redis://ho st",
        ] {
            XCTAssertNotNil(refusal(url), url)
        }
    }

    func testParseListWithCommas() throws {
        let list = try RedisEndpoint.parseList("redis://a:7000, redis://:pw@b:7001/0 ,redis://[::1]")
        XCTAssertEqual(list, [RedisEndpoint(host: "a", port: 7000), RedisEndpoint(host: "b", port: 7001, password: "pw"), RedisEndpoint(host: "::1")])
        XCTAssertEqual(try RedisEndpoint.parseList("redis://solo"), [RedisEndpoint(host: "solo")])
    }

    func testTLSSchemes() throws {
        XCTAssertEqual(try RedisEndpoint.parse("rediss://cache"), RedisEndpoint(host: "cache", port: 6379, tls: true))
        XCTAssertEqual(
            try RedisEndpoint.parse("rediss://user:pw@cache:6380/2"),
            RedisEndpoint(host: "cache", port: 6380, username: "user", password: "pw", database: 2, tls: true))
        XCTAssertEqual(try RedisEndpoint.parse("rediss://[::1]:7000"), RedisEndpoint(host: "::1", port: 7000, tls: true))
        XCTAssertEqual(try RedisEndpoint.parse("rediss+cluster://a:7000"), RedisEndpoint(host: "a", port: 7000, tls: true))
        XCTAssertFalse(try RedisEndpoint.parse("redis://cache").tls)
        XCTAssertFalse(try RedisEndpoint.parse("redis+cluster://cache").tls)
        XCTAssertNil(try RedisEndpoint.parse("rediss://cache").tlsContext, "the defaults until the options attach theirs")
    }

    func testClusterNodesInheritTLSFromTheSeeds() throws {
        let seed = try RedisEndpoint.parse("rediss://:pw@10.0.0.1:7000")
        let node = seed.node("10.0.0.2:7001")
        XCTAssertTrue(node.tls)
        XCTAssertEqual(node.host, "10.0.0.2")
        XCTAssertEqual(node.password, "pw")
    }

    func testParseListRefusesAMixOfTLSAndPlain() {
        XCTAssertThrowsError(try RedisEndpoint.parseList("rediss://a:7000,redis://b:7001")) {
            XCTAssertEqual(($0 as? ConfigError)?.option, "--redis")
        }
        XCTAssertEqual(try RedisEndpoint.parseList("rediss://a:7000,rediss://b:7001").map(\.tls), [true, true])
    }

    func testParseListRefusesEmptyEntries() {
        for text in ["", " ", "redis://a,", ",redis://a", "redis://a,,redis://b", "redis://a,http://b"] {
            XCTAssertThrowsError(try RedisEndpoint.parseList(text), text) {
                XCTAssertEqual(($0 as? ConfigError)?.option, "--redis")
            }
        }
    }
}
