// The WebSocket closing handshake and keep-alive pings as pure transitions (no socket):
// what Herald sends and when it drops the connection.
import Herald
import XCTest

final class WebSocketControlTests: XCTestCase {
    private let interval: Int64 = 30_000

    func testAClientsCloseIsAnsweredWhenHeraldHasNotClosed() {
        let control = WebSocketControl(pingIntervalMs: interval)
        XCTAssertTrue(control.answersClose(), "Herald echoes the close frame, then closes after flushing")
    }

    func testAClientsCloseAfterHeraldsIsNotAnsweredAgain() {
        var control = WebSocketControl(pingIntervalMs: interval)
        XCTAssertTrue(control.sendClose(now: 1000))
        XCTAssertFalse(control.answersClose(), "the client's close answers Herald's: no second close frame")
    }

    func testHeraldSendsOneCloseFrameAndMarksItSent() {
        var control = WebSocketControl(pingIntervalMs: interval)
        XCTAssertFalse(control.closeSent)
        XCTAssertTrue(control.sendClose(now: 1000))
        XCTAssertTrue(control.closeSent)
        XCTAssertEqual(control.closeSentMs, 1000)
        XCTAssertFalse(control.sendClose(now: 1500), "a second close frame is not sent")
        XCTAssertEqual(control.closeSentMs, 1000, "the wait is not extended")
    }

    func testAfterHeraldsCloseItWaitsAtMostTheCloseWaitThenDrops() {
        var control = WebSocketControl(pingIntervalMs: interval)
        _ = control.sendClose(now: 10_000)
        XCTAssertEqual(control.tick(now: 10_000 + WebSocketControl.closeWaitMs, lastHeardMs: 0), .wait)
        XCTAssertEqual(control.tick(now: 10_001 + WebSocketControl.closeWaitMs, lastHeardMs: 0), .drop)
    }

    func testWhileClosingNoPingIsSentAndSilenceDoesNotDropEarly() {
        var control = WebSocketControl(pingIntervalMs: 1000)
        _ = control.sendClose(now: 100_000)
        XCTAssertEqual(
            control.tick(now: 100_500, lastHeardMs: 0), .wait,
            "long silence before the close frame does not cut the close wait short")
        XCTAssertNil(control.pingSentMs)
    }

    func testAProtocolErrorRestartsTheCloseWait() {
        var control = WebSocketControl(pingIntervalMs: interval)
        _ = control.sendClose(now: 1000)
        control.failed(now: 2500)
        XCTAssertEqual(control.closeSentMs, 2500)
        XCTAssertEqual(control.tick(now: 2500 + WebSocketControl.closeWaitMs, lastHeardMs: 0), .wait)
    }

    func testASilentClientIsPingedOnceAfterOneInterval() {
        var control = WebSocketControl(pingIntervalMs: interval)
        XCTAssertEqual(control.tick(now: interval - 1, lastHeardMs: 0), .wait)
        XCTAssertEqual(control.tick(now: interval, lastHeardMs: 0), .sendPing)
        XCTAssertEqual(control.pingSentMs, interval)
        XCTAssertEqual(control.tick(now: interval + 1000, lastHeardMs: 0), .wait, "one ping per silence")
    }

    func testAPongAllowsTheNextPing() {
        var control = WebSocketControl(pingIntervalMs: interval)
        XCTAssertEqual(control.tick(now: interval, lastHeardMs: 0), .sendPing)
        control.receivedPong()
        XCTAssertNil(control.pingSentMs)
        // The pong was heard at interval + 10; the next silent interval earns a new ping.
        XCTAssertEqual(control.tick(now: 2 * interval + 9, lastHeardMs: interval + 10), .wait)
        XCTAssertEqual(control.tick(now: 2 * interval + 10, lastHeardMs: interval + 10), .sendPing)
    }

    func testAClientSilentForTwoIntervalsIsDropped() {
        var control = WebSocketControl(pingIntervalMs: interval)
        XCTAssertEqual(control.tick(now: interval, lastHeardMs: 0), .sendPing)
        XCTAssertEqual(control.tick(now: 2 * interval - 1, lastHeardMs: 0), .wait)
        XCTAssertEqual(control.tick(now: 2 * interval, lastHeardMs: 0), .drop)
    }

    func testAClientThatKeepsTalkingIsNeitherPingedNorDropped() {
        var control = WebSocketControl(pingIntervalMs: interval)
        for second in stride(from: Int64(0), through: 5 * interval, by: 1000) {
            XCTAssertEqual(control.tick(now: second, lastHeardMs: second - 500), .wait)
        }
    }
}
