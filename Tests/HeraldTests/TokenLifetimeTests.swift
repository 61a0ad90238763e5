// TokenLifetime: when a token's holder is warned (the lead and the `in` it is told), and the
// TokenClock on a real loop: the warning, then the expiry, moved by a new `exp`, silenced by stop.
import FoundationEssentials
import HeraldTestSupport
import XCTest

@testable import Herald

final class TokenLifetimeTests: XCTestCase {
    // MARK: TokenWarning

    func testLeadIsTheWarningWhenTheTokenLivesLongEnough() {
        XCTAssertEqual(TokenWarning.leadMs(remainingMs: 3_600_000, warningMs: 30_000), 30_000)
        XCTAssertEqual(TokenWarning.leadMs(remainingMs: 60_000, warningMs: 30_000), 30_000)
    }

    func testLeadIsHalfTheRemainingLifeWhenThatIsShorter() {
        XCTAssertEqual(TokenWarning.leadMs(remainingMs: 40_000, warningMs: 30_000), 20_000)
        XCTAssertEqual(TokenWarning.leadMs(remainingMs: 3_000, warningMs: 2_000), 1_500)
        XCTAssertEqual(TokenWarning.leadMs(remainingMs: 1, warningMs: 2_000), 0)
    }

    func testNoLeadForATokenAlreadyOver() {
        XCTAssertEqual(TokenWarning.leadMs(remainingMs: 0, warningMs: 30_000), 0)
        XCTAssertEqual(TokenWarning.leadMs(remainingMs: -5_000, warningMs: 30_000), 0)
    }

    func testSecondsLeftAreRoundedAndNeverNegative() {
        XCTAssertEqual(TokenWarning.secondsLeft(expiresAt: 1_000_030, now: 1_000_000.2), 30)
        XCTAssertEqual(TokenWarning.secondsLeft(expiresAt: 1_000_002, now: 1_000_000.4), 2)
        XCTAssertEqual(TokenWarning.secondsLeft(expiresAt: 1_000_000, now: 1_000_000.9), 0)
    }

    // MARK: TokenClock

    private func clock(_ loop: EventLoop, warningMs: Int64, events: @escaping (String) -> Void) -> TokenClock {
        TokenClock(
            services: TokenServices(access: AccessPolicy(), warningMs: warningMs, loop: loop),
            warn: { events("warn \($0)") }, expire: { events("expire") })
    }

    private var now: Double { Date().timeIntervalSince1970 }

    func testWarnsThenExpires() throws {
        let loop = try EventLoop()
        var events: [String] = []
        var expiredAt: Double?
        let clock = clock(loop, warningMs: 100) {
            events.append($0)
            if $0 == "expire" { expiredAt = self.now }
        }
        let exp = now + 0.3
        clock.follow(exp)
        XCTAssertTrue(loop.run(until: { expiredAt != nil }, timeoutMs: 2000))
        XCTAssertEqual(events, ["warn 0", "expire"])
        XCTAssertGreaterThanOrEqual(expiredAt!, exp - 0.002)
        XCTAssertNil(clock.expiresAt)
    }

    func testANewExpMovesBothTimers() throws {
        let loop = try EventLoop()
        var events: [String] = []
        let clock = clock(loop, warningMs: 50) { events.append($0) }
        clock.follow(now + 0.1)
        loop.schedule(afterMs: 20) { clock.follow(self.now + 0.4) }
        loop.run(forMs: 250)
        XCTAssertEqual(events, [], "the old exp's timers must not fire")
        XCTAssertTrue(loop.run(until: { events.count == 2 }, timeoutMs: 2000))
        XCTAssertEqual(events, ["warn 0", "expire"])
    }

    func testTheSameExpAgainKeepsTheTimer() throws {
        let loop = try EventLoop()
        var events: [String] = []
        let clock = clock(loop, warningMs: 100) { events.append($0) }
        let exp = now + 0.15
        clock.follow(exp)
        loop.run(forMs: 100)
        XCTAssertEqual(events, ["warn 0"])
        clock.follow(exp)  // a repeated refresh: no second warning
        XCTAssertTrue(loop.run(until: { events.count == 2 }, timeoutMs: 2000))
        XCTAssertEqual(events, ["warn 0", "expire"])
    }

    func testStopSilencesEverything() throws {
        let loop = try EventLoop()
        var events: [String] = []
        let clock = clock(loop, warningMs: 30) { events.append($0) }
        clock.follow(now + 0.06)
        clock.stop()
        loop.run(forMs: 150)
        XCTAssertEqual(events, [])
    }

    func testNoExpNoTimers() throws {
        let loop = try EventLoop()
        var events: [String] = []
        let clock = clock(loop, warningMs: 30) { events.append($0) }
        clock.follow(now + 0.05)
        clock.follow(nil)  // refreshed with a token without exp
        loop.run(forMs: 120)
        XCTAssertEqual(events, [])
    }

    // MARK: Envelopes

    func testTheTokenEnvelopes() {
        XCTAssertEqual(String(decoding: Envelope.tokenExpiring(in: 30), as: UTF8.self), #"{"type":"token_expiring","in":30}"#)
        XCTAssertEqual(
            String(decoding: Envelope.refreshed(expiresAt: 1_800_000_000, id: .number("7")), as: UTF8.self),
            #"{"type":"refreshed","exp":1800000000,"id":7}"#)
        XCTAssertEqual(
            String(decoding: Envelope.refreshed(expiresAt: 1_800_000_000.5, id: nil), as: UTF8.self), #"{"type":"refreshed","exp":1800000000.5}"#)
        XCTAssertEqual(String(decoding: Envelope.refreshed(expiresAt: nil, id: nil), as: UTF8.self), #"{"type":"refreshed","exp":null}"#)
        XCTAssertEqual(
            String(decoding: Envelope.revoked(kind: "stream", names: ["a", "b"]), as: UTF8.self),
            #"{"type":"unsubscribed","kind":"stream","names":["a","b"],"reason":"forbidden"}"#)
    }
}
