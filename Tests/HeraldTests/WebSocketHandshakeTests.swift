// WebSocketHandshake: the accept value (RFC 6455 §4.2.2) and each refusal of §4.2.1.
import Herald
import XCTest

final class WebSocketHandshakeTests: XCTestCase {
    private func upgrade(_ overrides: [String: String?] = [:], method: String = "GET", minor: Int = 1) -> HTTPRequest {
        var fields: [String: String?] = [
            "host": "localhost",
            "upgrade": "websocket",
            "connection": "Upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
        ]
        for (name, value) in overrides { fields[name] = value }
        let headers = fields.compactMap { name, value in value.map { (name: name, value: $0) } }.sorted { $0.name < $1.name }
        return HTTPRequest(method: method, target: "/subscribe", minorVersion: minor, headers: headers)
    }

    private func status(_ request: HTTPRequest) -> Int? {
        do throws(HTTPError) {
            _ = try WebSocketHandshake.accept(request)
            return nil
        } catch {
            return error.status
        }
    }

    func testAcceptValueOfTheRFCExample() {
        XCTAssertEqual(WebSocketHandshake.acceptValue(for: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testValidUpgradeIsAnswered101() throws {
        let response = try WebSocketHandshake.accept(upgrade())
        XCTAssertEqual(response.status, 101)
        let headers = Dictionary(uniqueKeysWithValues: response.headers.map { ($0.0.lowercased(), $0.1) })
        XCTAssertEqual(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        XCTAssertEqual(headers["upgrade"]?.lowercased(), "websocket")
        XCTAssertEqual(headers["connection"]?.lowercased(), "upgrade")
        let wire = String(decoding: response.serialize(keepAlive: true), as: UTF8.self)
        XCTAssertTrue(wire.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), wire)
        XCTAssertFalse(wire.lowercased().contains("content-length"), "a 101 has no body framing")
    }

    func testHeaderTokensAreCaseInsensitiveAndConnectionIsAList() throws {
        XCTAssertNil(status(upgrade(["upgrade": "WebSocket", "connection": "keep-alive, Upgrade"])))
    }

    func testIsUpgrade() {
        XCTAssertTrue(WebSocketHandshake.isUpgrade(upgrade()))
        XCTAssertFalse(WebSocketHandshake.isUpgrade(upgrade(["upgrade": nil])))
        XCTAssertFalse(WebSocketHandshake.isUpgrade(upgrade(["upgrade": "h2c"])))
    }

    func testMissingKeyIs400() {
        XCTAssertEqual(status(upgrade(["sec-websocket-key": nil])), 400)
    }

    func testMalformedKeysAre400() {
        for key in ["not base64!", "c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZSBsb25nZXI=", ""] {
            XCTAssertEqual(status(upgrade(["sec-websocket-key": key])), 400, key)
        }
    }

    func testOtherVersionIs426() {
        XCTAssertEqual(status(upgrade(["sec-websocket-version": "8"])), 426)
        XCTAssertEqual(status(upgrade(["sec-websocket-version": nil])), 426)
        do throws(HTTPError) {
            _ = try WebSocketHandshake.accept(upgrade(["sec-websocket-version": "8"]))
            XCTFail("version 8 accepted")
        } catch {
            XCTAssertEqual(error.code, "upgrade_required")
            XCTAssertEqual(error.headers["Sec-WebSocket-Version"], "13", "RFC 6455 §4.4: say which version is spoken")
        }
    }

    func testMissingConnectionUpgradeIs400() {
        XCTAssertEqual(status(upgrade(["connection": nil])), 400)
        XCTAssertEqual(status(upgrade(["connection": "keep-alive"])), 400)
        XCTAssertEqual(status(upgrade(["connection": "upgraded"])), 400, "only the whole token counts")
    }

    func testUpgradeIsFoundAnywhereInTheConnectionList() {
        XCTAssertNil(status(upgrade(["connection": "keep-alive,\tUpgrade "])))
        XCTAssertNil(status(upgrade(["connection": "UPGRADE"])))
    }

    func testMissingUpgradeHeaderIs400() {
        XCTAssertEqual(status(upgrade(["upgrade": nil])), 400)
    }

    func testUpgradeNeedsGetAndHTTP11() {
        XCTAssertEqual(status(upgrade(method: "POST")), 400)
        XCTAssertEqual(status(upgrade(minor: 0)), 400)
    }
}
