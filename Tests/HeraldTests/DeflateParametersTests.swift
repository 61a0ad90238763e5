// DeflateParameters: permessage-deflate negotiation (RFC 7692 §7.1): every offer shape a client
// may send, the first acceptable offer wins, and an offer with a bad parameter is declined.
@testable import Herald
import XCTest

final class DeflateParametersTests: XCTestCase {
    private func negotiate(_ values: String...) -> DeflateParameters? {
        DeflateParameters.negotiate(values)
    }

    func testPlainOfferIsAcceptedWithServerNoContextTakeover() throws {
        let agreed = try XCTUnwrap(negotiate("permessage-deflate"))
        XCTAssertEqual(agreed.serverMaxWindowBits, 15)
        XCTAssertEqual(agreed.clientMaxWindowBits, 15)
        XCTAssertFalse(agreed.clientNoContextTakeover)
        XCTAssertEqual(agreed.responseValue, "permessage-deflate; server_no_context_takeover")
    }

    func testBrowserOfferClientMaxWindowBitsWithoutValue() throws {
        // What Chrome, Firefox and Python's websockets send.
        let agreed = try XCTUnwrap(negotiate("permessage-deflate; client_max_window_bits"))
        XCTAssertEqual(agreed.clientMaxWindowBits, 15)
        XCTAssertEqual(agreed.responseValue, "permessage-deflate; server_no_context_takeover")
    }

    func testClientNoContextTakeoverIsAcknowledged() throws {
        let agreed = try XCTUnwrap(negotiate("permessage-deflate; client_no_context_takeover; client_max_window_bits"))
        XCTAssertTrue(agreed.clientNoContextTakeover)
        XCTAssertEqual(agreed.responseValue, "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    }

    func testServerMaxWindowBitsIsHonouredAndEchoed() throws {
        let agreed = try XCTUnwrap(negotiate("permessage-deflate; server_max_window_bits=10"))
        XCTAssertEqual(agreed.serverMaxWindowBits, 10)
        XCTAssertEqual(agreed.responseValue, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10")
    }

    func testClientMaxWindowBitsValueSizesTheInflater() throws {
        XCTAssertEqual(try XCTUnwrap(negotiate("permessage-deflate; client_max_window_bits=12")).clientMaxWindowBits, 12)
        // 8 reads as zlib's least window, 9: inflating with a larger window is always safe.
        XCTAssertEqual(try XCTUnwrap(negotiate("permessage-deflate; client_max_window_bits=8")).clientMaxWindowBits, 9)
        // The answer never names client_max_window_bits: the client limits itself (§7.1.2.2).
        XCTAssertEqual(
            try XCTUnwrap(negotiate("permessage-deflate; client_max_window_bits=12")).responseValue,
            "permessage-deflate; server_no_context_takeover")
    }

    func testServerNoContextTakeoverOfferIsAccepted() throws {
        let agreed = try XCTUnwrap(negotiate("permessage-deflate; server_no_context_takeover"))
        XCTAssertEqual(agreed.responseValue, "permessage-deflate; server_no_context_takeover")
    }

    func testEveryParameterAtOnceWithQuotesSpacesAndCase() throws {
        let agreed = try XCTUnwrap(
            negotiate(
                #"Permessage-Deflate ;server_no_context_takeover ; Client_No_Context_Takeover;server_max_window_bits="11"; client_max_window_bits = 13"#
            ))
        XCTAssertEqual(agreed.serverMaxWindowBits, 11)
        XCTAssertEqual(agreed.clientMaxWindowBits, 13)
        XCTAssertTrue(agreed.clientNoContextTakeover)
    }

    func testOffersThatAreDeclined() {
        let declined = [
            "permessage-deflate; server_max_window_bits",  // needs a value
            "permessage-deflate; server_max_window_bits=8",  // zlib cannot make a raw 256-byte window
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",  // leading zero
            "permessage-deflate; server_max_window_bits=ten",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; server_no_context_takeover=1",  // takes no value
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",  // twice
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=12",
            "permessage-deflate; mux",  // not defined for an offer
            "permessage-deflate; server_max_window_bits=\"1 0\"",  // quoted, but not a token
        ]
        for offer in declined { XCTAssertNil(negotiate(offer), offer) }
    }

    func testOtherExtensionsAndNoOffer() {
        XCTAssertNil(negotiate("x-webkit-deflate-frame"))
        XCTAssertNil(negotiate("permessage-bzip2; level=9"))
        XCTAssertNil(negotiate(""))
        XCTAssertNil(DeflateParameters.negotiate([]))
    }

    func testFirstAcceptableOfferWins() throws {
        // Autobahn's case 13.7: a declined first offer, then the next one.
        let agreed = try XCTUnwrap(
            negotiate(
                "permessage-deflate; server_max_window_bits=8; client_no_context_takeover, permessage-deflate; client_no_context_takeover, permessage-deflate"
            ))
        XCTAssertTrue(agreed.clientNoContextTakeover)
        XCTAssertEqual(agreed.serverMaxWindowBits, 15)
        let first = try XCTUnwrap(negotiate("foo, permessage-deflate; server_max_window_bits=9, permessage-deflate"))
        XCTAssertEqual(first.serverMaxWindowBits, 9)
    }

    func testOffersAcrossSeveralHeaderFields() throws {
        let agreed = try XCTUnwrap(DeflateParameters.negotiate(["foo; bar=1", "permessage-deflate; client_no_context_takeover"]))
        XCTAssertTrue(agreed.clientNoContextTakeover)
        // A malformed field offers nothing; a later well-formed one still counts.
        XCTAssertNotNil(DeflateParameters.negotiate(["permessage-deflate; =", "permessage-deflate"]))
        XCTAssertNil(DeflateParameters.negotiate(["permessage-deflate; ="]))
    }

    func testMalformedHeadersNegotiateNothing() {
        let malformed = [
            "permessage-deflate;", "permessage-deflate; ;", "; permessage-deflate", "permessage-deflate server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=\"10", "permessage-deflate; a=b=c", "permessage-deflate; client_max_window_bits=\u{1F600}",
        ]
        for header in malformed { XCTAssertNil(negotiate(header), header) }
    }

    func testEmptyListElementsAreSkipped() throws {
        XCTAssertNotNil(negotiate(" , ,permessage-deflate,"))
    }

    func testHandshakeCarriesTheOffer() throws {
        let request = HTTPRequest(
            method: "GET", target: "/echo",
            headers: [
                ("host", "localhost"), ("upgrade", "websocket"), ("connection", "Upgrade"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="), ("sec-websocket-version", "13"),
                ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
            ])
        let response = try WebSocketHandshake.accept(request)
        XCTAssertEqual(response.deflateOffer, DeflateParameters())
        // The connection adds the header when --compression is on; the 101 itself has none.
        XCTAssertFalse(response.headers.contains { $0.0.lowercased() == "sec-websocket-extensions" })
    }
}
