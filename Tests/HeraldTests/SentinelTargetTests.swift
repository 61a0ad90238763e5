// SentinelTarget.parse and the `--redis redis+sentinel://` option: every form the README
// documents, and the refusals.
import Herald
import XCTest

final class SentinelTargetTests: XCTestCase {
    private func refusal(_ url: String) -> String? {
        do throws(ConfigError) {
            _ = try SentinelTarget.parse(url)
            return nil
        } catch {
            XCTAssertEqual(error.option, "--redis")
            XCTAssertEqual(error.value, url)
            return error.reason
        }
    }

    func testOneSentinelDefaultPort() throws {
        let t = try SentinelTarget.parse("redis+sentinel://s1/mymaster")
        XCTAssertEqual(t.sentinels, [RedisEndpoint(host: "s1", port: 26379)])
        XCTAssertEqual(t.masterName, "mymaster")
        XCTAssertNil(t.username)
        XCTAssertNil(t.password)
        XCTAssertEqual(t.database, 0)
    }

    func testSeveralSentinelsPortsAndDatabase() throws {
        let t = try SentinelTarget.parse("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380, s3 ,[::1]:26381,[fe80::1]/m/3")
        XCTAssertEqual(
            t.sentinels,
            [
                RedisEndpoint(host: "10.0.0.1", port: 26379), RedisEndpoint(host: "10.0.0.2", port: 26380),
                RedisEndpoint(host: "s3", port: 26379), RedisEndpoint(host: "::1", port: 26381),
                RedisEndpoint(host: "fe80::1", port: 26379),
            ])
        XCTAssertEqual(t.masterName, "m")
        XCTAssertEqual(t.database, 3)
        XCTAssertEqual(try SentinelTarget.parse("redis+sentinel://s/m/").database, 0)
    }

    func testCredentialsAreTheMasters() throws {
        let t = try SentinelTarget.parse("redis+sentinel://app:p%40ss@s1,s2/m/2")
        XCTAssertEqual(t.username, "app")
        XCTAssertEqual(t.password, "p@ss")
        XCTAssertEqual(t.master(host: "10.0.0.9", port: 6380), RedisEndpoint(host: "10.0.0.9", port: 6380, username: "app", password: "p@ss", database: 2))
        // The sentinels get only the sentinel password, never the master's credentials.
        XCTAssertEqual(t.sentinelEndpoints(password: nil), [RedisEndpoint(host: "s1", port: 26379), RedisEndpoint(host: "s2", port: 26379)])
        XCTAssertEqual(t.sentinelEndpoints(password: "sp").map(\.password), ["sp", "sp"])
        XCTAssertEqual(try SentinelTarget.parse("redis+sentinel://:pw@s/m").password, "pw")
        XCTAssertNil(try SentinelTarget.parse("redis+sentinel://:pw@s/m").username)
        XCTAssertEqual(try SentinelTarget.parse("redis+sentinel://:p@ss@s/m").password, "p@ss", "the last @ ends the credentials")
    }

    func testMasterNameIsPercentDecoded() throws {
        XCTAssertEqual(try SentinelTarget.parse("redis+sentinel://s/my%40master").masterName, "my@master")
        XCTAssertNotNil(refusal("redis+sentinel://s/a%20b"), "a space in the name")
    }

    /// `rediss+sentinel://`: TLS to the sentinels and to the master they name, both carrying the
    /// URL's TLS; a plain URL carries none.
    func testTLSSentinelURL() throws {
        let t = try SentinelTarget.parse("rediss+sentinel://u:p@s1,s2:26380/m/2")
        XCTAssertTrue(t.tls)
        XCTAssertTrue(t.sentinelEndpoints(password: "sp").allSatisfy(\.tls))
        let master = t.master(host: "10.0.0.9", port: 6380)
        XCTAssertTrue(master.tls)
        XCTAssertEqual(master.password, "p")
        XCTAssertEqual(t.description, "rediss+sentinel://s1:26379,s2:26380/m/2")
        XCTAssertFalse(try SentinelTarget.parse("redis+sentinel://s1/m").master(host: "h", port: 1).tls)
        let config = try Config.resolve(flags: ["redis": "rediss+sentinel://s1/m"], environment: [:])
        XCTAssertEqual(config.sentinel?.tls, true)
        XCTAssertTrue(config.redis.allSatisfy(\.tls))
    }

    func testRefusals() {
        XCTAssertNotNil(refusal("redis://s/m"))
        XCTAssertNotNil(refusal("redis+sentinel://s"), "no master name")
        XCTAssertNotNil(refusal("redis+sentinel://s/"), "empty master name")
        XCTAssertNotNil(refusal("redis+sentinel:///m"), "no sentinel")
        XCTAssertNotNil(refusal("redis+sentinel://s1,,s2/m"), "an empty sentinel")
        XCTAssertNotNil(refusal("redis+sentinel://s:0/m"))
        XCTAssertNotNil(refusal("redis+sentinel://s:65536/m"))
        XCTAssertNotNil(refusal("redis+sentinel://s:x/m"))
        XCTAssertNotNil(refusal("redis+sentinel://[::1/m"))
        XCTAssertNotNil(refusal("redis+sentinel://[::1]x/m"))
        XCTAssertNotNil(refusal("redis+sentinel://s/m/x"), "a database that is no number")
        XCTAssertNotNil(refusal("redis+sentinel://s/m/70000"))
        XCTAssertNotNil(refusal("redis+sentinel://s/m/1/2"), "junk after the database")
        XCTAssertNotNil(refusal("redis+sentinel://:p%zz@s/m"))
    }

    func testRedisOptionTakesASentinelURL() throws {
        let c = try Config.resolve(
            flags: ["redis": "redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/m/1"],
            environment: ["HERALD_SENTINEL_PASSWORD": "sp"])
        XCTAssertEqual(c.sentinel?.masterName, "m")
        XCTAssertEqual(c.sentinel?.sentinels.count, 2)
        XCTAssertEqual(c.sentinelPassword, "sp")
        XCTAssertFalse(c.redisCluster, "two sentinels are not a cluster")
        XCTAssertEqual(c.redis.first?.database, 1)
        XCTAssertEqual(c.loops, Config.automaticLoops(cores: Config.coreCount, redisIsLocal: true), "loopback sentinels count as a local Redis")
        let plain = try Config.resolve(flags: ["redis": "redis://h:6379"], environment: [:])
        XCTAssertNil(plain.sentinel)
        XCTAssertNil(plain.sentinelPassword)
    }
}
