// The TLS options of rediss:// links (--redis-ca, --redis-cert, --redis-key, --redis-tls-verify)
// as Config.resolve reads, checks and attaches them. The handshakes themselves are tested
// end to end against redis-server --tls-port (Tests/e2e/test_redis_tls.py).
import Herald
import XCTest

final class RedisTLSSettingsTests: XCTestCase {
    /// A PEM CA bundle every Debian system has (ca-certificates).
    private let systemBundle = "/etc/ssl/certs/ca-certificates.crt"

    private func refusal(_ flags: [String: String], env: [String: String] = [:]) -> ConfigError? {
        do throws(ConfigError) {
            _ = try Config.resolve(flags: flags, environment: env)
            return nil
        } catch {
            return error
        }
    }

    func testRedissAloneUsesTheDefaults() throws {
        let c = try Config.resolve(flags: ["redis": "rediss://cache:6380"], environment: [:])
        XCTAssertEqual(c.redis.map(\.tls), [true])
        XCTAssertNil(c.redis[0].tlsContext, "the system's CAs, verification on")
        XCTAssertTrue(c.redisTLS.verify)
        XCTAssertFalse(c.redisCluster)
    }

    func testTLSClusterSeed() throws {
        let c = try Config.resolve(flags: ["redis": "rediss+cluster://a:7000"], environment: [:])
        XCTAssertTrue(c.redisCluster)
        XCTAssertEqual(c.redis.map(\.tls), [true])
    }

    func testCAFileBuildsOneContextForEverySeed() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: systemBundle), "no system CA bundle")
        let c = try Config.resolve(
            flags: ["redis": "rediss://a:7000,rediss://b:7001"], environment: ["HERALD_REDIS_CA": systemBundle])
        XCTAssertEqual(c.redisTLS.caFile, systemBundle)
        let context = try XCTUnwrap(c.redis[0].tlsContext)
        XCTAssertTrue(c.redis[1].tlsContext === context, "one SSL_CTX for the process")
        XCTAssertTrue(context.verifies)
    }

    func testVerificationOff() throws {
        let c = try Config.resolve(flags: ["redis": "rediss://a"], environment: ["HERALD_REDIS_TLS_VERIFY": "off"])
        XCTAssertFalse(c.redisTLS.verify)
        XCTAssertEqual(c.redis[0].tlsContext?.verifies, false)
        let empty = try Config.resolve(flags: ["redis": "rediss://a"], environment: ["HERALD_REDIS_TLS_VERIFY": ""])
        XCTAssertTrue(empty.redisTLS.verify, "an empty variable leaves verification on")
        XCTAssertEqual(refusal(["redis": "rediss://a", "redis-tls-verify": "maybe"])?.option, "--redis-tls-verify")
    }

    func testUnreadableOrInvalidFilesAreRefusedAtStart() throws {
        let missing = refusal(["redis": "rediss://a", "redis-ca": "/nonexistent/ca.pem"])
        XCTAssertEqual(missing?.option, "--redis-ca")
        XCTAssertEqual(missing?.reason, "No such file or directory")
        let notPEM = refusal(["redis": "rediss://a", "redis-ca": "/etc/hostname"])
        XCTAssertEqual(notPEM?.option, "--redis-ca")
        XCTAssertTrue(notPEM?.reason.hasPrefix("not a PEM CA bundle") ?? false, notPEM?.reason ?? "")
        XCTAssertEqual(refusal(["redis": "rediss://a", "redis-cert": "/nonexistent/c.pem", "redis-key": "/nonexistent/k.pem"])?.option, "--redis-cert")
        XCTAssertEqual(refusal(["redis": "rediss://a", "redis-ca": ""])?.option, "--redis-ca")
    }

    func testCertificateAndKeyComeTogether() {
        XCTAssertEqual(refusal(["redis": "rediss://a", "redis-cert": "/etc/hostname"])?.option, "--redis-cert")
        XCTAssertEqual(refusal(["redis": "rediss://a", "redis-key": "/etc/hostname"])?.option, "--redis-key")
    }

    func testTLSOptionsWithoutARedissURLAreRefused() {
        XCTAssertEqual(refusal(["redis": "redis://a", "redis-ca": "/etc/hostname"])?.option, "--redis-ca")
        XCTAssertEqual(refusal(["redis-tls-verify": "off"])?.option, "--redis-tls-verify")
        XCTAssertNil(refusal(["redis-tls-verify": "on"]), "the default, stated, is no error")
    }
}
