// Grant's `watch` claim: the keys a token lets its holder watch, apart from the channels its
// `subscribe` globs name; patterns by containment, as for pub/sub patterns.
import Herald
import XCTest

final class GrantWatchTests: XCTestCase {
    private let secret = Array("0123456789abcdef0123456789abcdef".utf8)

    private func grant(_ claims: JSONObject) throws -> Grant {
        var claims = claims
        claims["exp"] = .number("4102444800")
        let token = JWT.sign(.object(claims), secret: secret)
        let request = HTTPRequest(method: "GET", target: "/subscribe", headers: [("authorization", "Bearer \(token)")])
        return try AccessPolicy(jwtSecret: secret).grant(for: request, query: [])
    }

    func testWatchGlobsGrantKeys() throws {
        let holder = try grant(["watch": .array([.string("order:*"), .string("leaderboard")])])
        XCTAssertTrue(holder.mayWatch("order:42"))
        XCTAssertTrue(holder.mayWatch("leaderboard"))
        XCTAssertFalse(holder.mayWatch("session:1"))
        XCTAssertTrue(holder.mayWatch(pattern: "order:4*"))
        XCTAssertFalse(holder.mayWatch(pattern: "order*"), "order* reaches orderly-secrets")
        XCTAssertFalse(holder.mayWatch(pattern: "lead*"))
    }

    func testSubscribeGlobsGrantNoWatch() throws {
        let holder = try grant(["subscribe": .array([.string("*")])])
        XCTAssertTrue(holder.maySubscribe("anything"))
        XCTAssertFalse(holder.mayWatch("anything"))
        XCTAssertFalse(holder.mayWatch(pattern: "a*"))
    }

    func testWithoutAuthEverythingIsWatchable() {
        XCTAssertTrue(Grant.everything.mayWatch("k"))
        XCTAssertTrue(Grant.everything.mayWatch(pattern: "k*"))
    }
}
