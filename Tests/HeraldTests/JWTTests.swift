// JWT.verify / JWT.sign: HS256 tokens (RFC 7519) in the JWS compact form (RFC 7515), checked
// against vectors computed outside Swift (Python's hmac/hashlib, and RFC 7515 Appendix A.1).
import Foundation
import Herald
import XCTest

final class JWTTests: XCTestCase {
    private let secret = Array("0123456789abcdef0123456789abcdef".utf8)
    /// A moment between every `nbf` and `exp` these tests use.
    private let now = 1_800_000_000.0

    private func claims(_ json: String) throws -> JSONValue { try JSONValue.parse(Array(json.utf8)) }

    private func failure(_ token: String, secret: [UInt8]? = nil, now: Double? = nil) -> JWT.Failure? {
        do throws(JWT.Failure) {
            _ = try JWT.verify(token, secret: secret ?? self.secret, now: now ?? self.now)
            return nil
        } catch {
            return error
        }
    }

    private func isMalformed(_ failure: JWT.Failure?) -> Bool {
        if case .malformed? = failure { return true }
        return false
    }

    private func base64URL(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Tokens signed with `secret` by Python (hmac/hashlib), so a correct signature does not
    /// rescue a refused header or payload: `header . payload` as JSON text.
    private let signed: [String: String] = [
        // {"alg":"none"} . {"sub":"a"}
        "algNone": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.o0RIQI0R4s4faJPv_f2ILgic5tdGTWXmQBdqFvkrRjk",
        // {"alg":"RS256","typ":"JWT"} . {"sub":"a"}
        "rs256": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.HWUyeJq2kDS0PFLwuh2bL7Ohgw0b5-OID-Oakql0TGw",
        // {"alg":"HS512"} . {"sub":"a"}
        "hs512": "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhIn0.NhCxos1BKR6aXVFsIog6gC5jg6O83fVOx214KNCrWBU",
        // {"alg":"hs256"} . {"sub":"a"}
        "lowercaseAlg": "eyJhbGciOiJoczI1NiJ9.eyJzdWIiOiJhIn0.GoTDpPNmHI31gz-_JfZOT-vmKmQsqKt-XuADLWp7slo",
        // {"typ":"JWT"} . {"sub":"a"}
        "noAlg": "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJhIn0.4qeehe9-GLkpg-ePNO6o5L1zv_UhYgZ0RbvmiwuHzeQ",
        // HS256 . {"sub":"a"}
        "headerNotJSON": "SFMyNTY.eyJzdWIiOiJhIn0.MEk5JZ_Ij7TOMkD8p3PcZHej3EGYaYEdLBTZff7iJTY",
        // {"typ":"JWT","alg":"HS256","kid":"k1"} . {"sub":"a"}
        "withKid": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.Cu7nQWoDpu9GBlyXkI9RzvFMJ08CJylLROY7Ay0aVq4",
        // {"alg":"HS256","typ":"JWT"} . ["sub"]
        "payloadArray": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.WyJzdWIiXQ.MHDTsUaqbfYA8wimrlZdN8UO8NM8nvPmQe20-qJ8nsw",
        // {"alg":"HS256","typ":"JWT"} . "sub"
        "payloadString": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.InN1YiI.Vp8VjpZzSyQJPRGqcbLGcs5KmFv-YNmgrK0nJCUudlQ",
        // {"alg":"HS256","typ":"JWT"} . 42
        "payloadNumber": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.NDI.gHl8cVV4nS4q3YY23DqrHHxkUceYnJTyq1o1TewiyaA",
        // {"alg":"HS256","typ":"JWT"} . null
        "payloadNull": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.bnVsbA.DxF7qvi-DskBRYUp9PWe8PnvdmuzcqtaZX_z6ykpChU",
        // {"alg":"HS256","typ":"JWT"} . true
        "payloadTrue": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.dHJ1ZQ.En7itYl7KcXOfAqVh3PD1UOs6sOaLoQ4T7iUXDLhnN0",
        // {"alg":"HS256","typ":"JWT"} . {not json
        "payloadBroken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e25vdCBqc29u.p31-Y6cSatiQH90kEszWze0tsNMMDJSbL-tzZ823EdM",
        // {"alg":"HS256"} . {"publish":["a.*"],"subscribe":[],"n":1.5}
        // {"alg":"HS256","crit":["x-ext"],"x-ext":1} . {"sub":"a"}
        "critExt": "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsieC1leHQiXSwieC1leHQiOjF9.eyJzdWIiOiJhIn0.45-hWfEM1JP-rtbEdkqCiBzlX7cuDl9MD6Y4-LOVDGo",
        // {"alg":"HS256","crit":[]} . {"sub":"a"}
        "critEmpty": "eyJhbGciOiJIUzI1NiIsImNyaXQiOltdfQ.eyJzdWIiOiJhIn0.6ooK1uuRUc9Lpda2cIY22DeRN8wtrBRMygNnoFIKSXA",
        // {"alg":"HS256","crit":"exp"} . {"sub":"a"}
        "critString": "eyJhbGciOiJIUzI1NiIsImNyaXQiOiJleHAifQ.eyJzdWIiOiJhIn0.ulAHUDSHeijFL0zpWJB0qZDw5rwqJ_qrN0Y-PS9UBpg",
        // {"alg":"HS256","crit":null} . {"sub":"a"}
        "critNull": "eyJhbGciOiJIUzI1NiIsImNyaXQiOm51bGx9.eyJzdWIiOiJhIn0.yySQGSX6XXPNcPO463p0fyeR9kEnZ85MsTPVFiAIWvs",
        // {"alg":"HS256","b64":false,"crit":["b64"]} . {"sub":"a"} (RFC 7797 would change what is signed)
        "critB64": "eyJhbGciOiJIUzI1NiIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19.eyJzdWIiOiJhIn0.YWpToEvceAANOq7CihxhhJuGDSOrKhDiDbNXB63CJzg",
        "claims": "eyJhbGciOiJIUzI1NiJ9.eyJwdWJsaXNoIjpbImEuKiJdLCJzdWJzY3JpYmUiOltdLCJuIjoxLjV9"
            + ".9m8JYWy4-7BdlST4HWbXy4poI6PNkuVauTj5JZnJ91g",
    ]

    func testNonNumericExpIsRefusedNotIgnored() {
        let token = JWT.sign(.object(["exp": .string("1970-01-01")]), secret: secret)
        XCTAssertThrowsError(try JWT.verify(token, secret: secret, now: now)) { error in
            guard case JWT.Failure.malformed = error else { return XCTFail("\(error)") }
        }
    }

    func testSignThenVerifyRoundTrips() throws {
        let original = try claims(#"{"sub":"user-42","exp":1900000000,"publish":["chat.room-7"],"subscribe":["chat.room-7","news.*"]}"#)
        let token = JWT.sign(original, secret: secret)
        XCTAssertEqual(try JWT.verify(token, secret: secret, now: now), original)
    }

    func testSignProducesThePythonComputedToken() throws {
        // python3: h = b64url('{"alg":"HS256","typ":"JWT"}'); p = b64url(compact claims, in this
        // key order); sig = b64url(hmac.new(secret, f"{h}.{p}", sha256).digest()), padding stripped.
        let original = try claims(#"{"publish":["chat.room-7"],"sub":"user-42","subscribe":["news.*"]}"#)
        XCTAssertEqual(
            JWT.sign(original, secret: secret),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
                + ".eyJwdWJsaXNoIjpbImNoYXQucm9vbS03Il0sInN1YiI6InVzZXItNDIiLCJzdWJzY3JpYmUiOlsibmV3cy4qIl19"
                + ".vqfx1LGJMePtv79EyguPcOmkVj5KsoypenNhMGeVN88")
    }

    func testVerifiesAPythonSignedTokenWithOtherKeyOrder() throws {
        // The payload as Python wrote it ({"sub":..,"publish":..,"subscribe":..}), not re-sorted.
        let token =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
            + ".eyJzdWIiOiJ1c2VyLTQyIiwicHVibGlzaCI6WyJjaGF0LnJvb20tNyJdLCJzdWJzY3JpYmUiOlsibmV3cy4qIl19"
            + ".3whXI-4_PZRvNLUBK5k097oUkU5Ms-jEefaBXCD3jlg"
        let verified = try JWT.verify(token, secret: secret, now: now)
        XCTAssertEqual(verified["sub"]?.stringValue, "user-42")
        XCTAssertEqual(verified["subscribe"]?.arrayValue, [.string("news.*")])
    }

    func testBase64URLAlphabetWithoutPadding() throws {
        // The payload {"exp":4102444800,"sub":">>>???"} encodes with both `-` and `_`, and its
        // length is not a multiple of 3, so standard base64 would pad it.
        let token =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsInN1YiI6Ij4-Pj8_PyJ9"
            + ".QTGED7eqFDZUjllvWXQKKV1_A8yY3aTwbMcLzEFW7tk"
        XCTAssertEqual(try JWT.verify(token, secret: secret, now: now)["sub"]?.stringValue, ">>>???")
        let signed = JWT.sign(try claims(#"{"exp":4102444800,"sub":">>>???"}"#), secret: secret)
        XCTAssertEqual(signed, token)
        XCTAssertFalse(signed.contains("="))
        XCTAssertFalse(signed.contains("+"))
        XCTAssertFalse(signed.contains("/"))
    }

    func testPaddedOrStandardBase64IsRefused() {
        let good =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsInN1YiI6Ij4-Pj8_PyJ9"
            + ".QTGED7eqFDZUjllvWXQKKV1_A8yY3aTwbMcLzEFW7tk"
        // RFC 7515 §2: base64url with the trailing `=` omitted.
        XCTAssertTrue(isMalformed(failure(good + "=")))
    }

    /// The token of `testBase64URLAlphabetWithoutPadding`: its signature ends in `_A8yY3aTwbMcLzEFW7tk`.
    private let canonical =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsInN1YiI6Ij4-Pj8_PyJ9"
        + ".QTGED7eqFDZUjllvWXQKKV1_A8yY3aTwbMcLzEFW7tk"

    func testSignatureWhoseLastCharacterDiffersOnlyInUnusedBitsIsRefused() throws {
        XCTAssertNoThrow(try JWT.verify(canonical, secret: secret, now: now))
        // 43 characters carry 258 bits for 256: the last character's low 2 bits are unused.
        // `k` (36) is the canonical spelling; `l`, `m`, `n` (37-39) decode to the same bytes.
        for twin in ["l", "m", "n"] {
            let token = String(canonical.dropLast()) + twin
            XCTAssertTrue(isMalformed(failure(token)), "signature ending in \(twin) must not verify")
        }
    }

    func testHeaderOrPayloadWithNonZeroUnusedBitsIsRefused() {
        // withKid's header (51 characters) and payload (15) both end in `0` (52) with 2 unused
        // bits; `1` (53) decodes to the same JSON. Refused as malformed, before the signature.
        let parts = signed["withKid"]!.split(separator: ".").map(String.init)
        XCTAssertTrue(isMalformed(failure("\(parts[0].dropLast())1.\(parts[1]).\(parts[2])")), "header")
        XCTAssertTrue(isMalformed(failure("\(parts[0]).\(parts[1].dropLast())1.\(parts[2])")), "payload")
    }

    func testStandardBase64AlphabetIsRefused() {
        // `_` spelled `/` (standard base64) decodes to the same bytes: one token, one spelling.
        let standard = canonical.replacingOccurrences(of: "V1_A8", with: "V1/A8")
        XCTAssertNotEqual(standard, canonical)
        XCTAssertTrue(isMalformed(failure(standard)))
        let parts = canonical.split(separator: ".").map(String.init)
        let payloadPlus = parts[1].replacingOccurrences(of: "-", with: "+")
        XCTAssertTrue(isMalformed(failure("\(parts[0]).\(payloadPlus).\(parts[2])")))
    }

    func testCharactersOutsideTheAlphabetAreRefused() {
        let parts = canonical.split(separator: ".").map(String.init)
        for odd in [" ", "\n", "\t", "=", "==", "%3D", "!", "\u{00e9}", "\u{0}"] {
            let sig = String(parts[2].prefix(20)) + odd + String(parts[2].dropFirst(20))
            XCTAssertTrue(isMalformed(failure("\(parts[0]).\(parts[1]).\(sig)")), "signature with \(odd.debugDescription)")
        }
        XCTAssertTrue(isMalformed(failure(canonical + "==")), "padding")
        XCTAssertTrue(isMalformed(failure("\(parts[0])=.\(parts[1]).\(parts[2])")), "padded header")
    }

    func testLengthOfFourNPlusOneIsRefused() {
        let parts = canonical.split(separator: ".").map(String.init)
        // 45 characters: one more than a whole group, which no byte count encodes to.
        XCTAssertTrue(isMalformed(failure("\(parts[0]).\(parts[1]).\(parts[2])AA")))
    }

    func testCritHeaderIsRefusedWhateverItLists() {
        // RFC 7515 §4.1.11: Herald understands no extension, and an empty or malformed `crit`
        // is invalid too; every one of these is validly signed.
        for name in ["critExt", "critEmpty", "critString", "critNull", "critB64"] {
            guard case .malformed(let why)? = failure(signed[name]!) else {
                XCTFail("\(name) was not refused as malformed: \(String(describing: failure(signed[name]!)))")
                continue
            }
            XCTAssertTrue(why.contains("crit"), "\(name): the reason names crit: \(why)")
        }
    }

    func testRFC7515AppendixA1Vector() {
        // RFC 7515 A.1: header {"typ":"JWT",\r\n "alg":"HS256"}, payload with CRLFs, exp 1300819380.
        let key: [UInt8] = [
            3, 35, 53, 75, 43, 15, 165, 188, 131, 126, 6, 101, 119, 123, 166, 143, 90, 179, 40, 230, 240, 84, 201, 40,
            169, 15, 132, 178, 210, 80, 46, 191, 211, 251, 90, 146, 210, 6, 71, 239, 150, 138, 180, 195, 119, 98,
            61, 34, 61, 46, 33, 114, 5, 46, 79, 8, 192, 205, 154, 245, 103, 208, 128, 163,
        ]
        let token =
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
            + ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
            + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        XCTAssertEqual(try JWT.verify(token, secret: key, now: 1_300_819_379)["iss"]?.stringValue, "joe")
        XCTAssertEqual(failure(token, secret: key, now: 1_300_819_380), .expired, "exp is the first moment it is invalid")
    }

    func testWrongSecretIsBadSignature() {
        let token = JWT.sign(.object(["sub": .string("a")]), secret: secret)
        XCTAssertEqual(failure(token, secret: Array("another-secret-another-secret-xx".utf8)), .badSignature)
    }

    func testTamperedPayloadIsBadSignature() {
        let token = JWT.sign(.object(["publish": .array([.string("a")])]), secret: secret)
        let parts = token.split(separator: ".").map(String.init)
        let forged = "\(parts[0]).\(base64URL(#"{"publish":["*"]}"#)).\(parts[2])"
        XCTAssertEqual(failure(forged), .badSignature)
        XCTAssertEqual(failure("\(parts[0]).\(parts[1])."), .badSignature, "an empty signature")
    }

    func testExpInThePastIsExpired() {
        let token = JWT.sign(.object(["exp": .number("1700000000")]), secret: secret)
        XCTAssertEqual(failure(token, now: 1_700_000_001), .expired)
        XCTAssertEqual(failure(token, now: 1_700_000_000), .expired)
        XCTAssertNil(failure(token, now: 1_699_999_999))
    }

    func testNbfInTheFutureIsNotYetValid() {
        let token = JWT.sign(.object(["nbf": .number("1900000000")]), secret: secret)
        XCTAssertEqual(failure(token, now: 1_899_999_999), .notYetValid)
        XCTAssertNil(failure(token, now: 1_900_000_000), "nbf is the first moment it is valid")
    }

    func testExpiredIsReportedOnlyForAGenuineToken() {
        let token = JWT.sign(.object(["exp": .number("1")]), secret: secret)
        XCTAssertEqual(failure(token, secret: Array("another-secret-another-secret-xx".utf8)), .badSignature)
    }

    func testAlgNoneIsMalformed() {
        let unsigned = "\(base64URL(#"{"alg":"none","typ":"JWT"}"#)).\(base64URL(#"{"sub":"a"}"#))."
        XCTAssertTrue(isMalformed(failure(unsigned)))
        XCTAssertTrue(isMalformed(failure(signed["algNone"]!)), "even with a valid HS256 signature")
    }

    func testOtherAlgorithmsAreMalformed() {
        for name in ["rs256", "hs512", "lowercaseAlg", "noAlg"] {
            XCTAssertTrue(isMalformed(failure(signed[name]!)), name)
        }
    }

    func testHS256HeaderWithOtherFieldsIsAccepted() throws {
        XCTAssertEqual(try JWT.verify(signed["withKid"]!, secret: secret, now: now)["sub"]?.stringValue, "a")
    }

    func testWrongNumberOfPartsIsMalformed() {
        let token = JWT.sign(.object(["sub": .string("a")]), secret: secret)
        let parts = token.split(separator: ".").map(String.init)
        XCTAssertTrue(isMalformed(failure("\(parts[0]).\(parts[1])")))
        XCTAssertTrue(isMalformed(failure(token + ".x")))
        XCTAssertTrue(isMalformed(failure("")))
        XCTAssertTrue(isMalformed(failure("not-a-token")))
    }

    func testPayloadThatIsNotAnObjectIsMalformed() {
        for name in ["payloadArray", "payloadString", "payloadNumber", "payloadNull", "payloadTrue", "payloadBroken"] {
            XCTAssertTrue(isMalformed(failure(signed[name]!)), name)
        }
    }

    func testHeaderThatIsNotJSONIsMalformed() {
        XCTAssertTrue(isMalformed(failure(signed["headerNotJSON"]!)))
        XCTAssertTrue(isMalformed(failure("!!!.\(base64URL(#"{"sub":"a"}"#)).AAAA")))
    }

    func testVerifyHandsBackTheClaims() throws {
        let c = try JWT.verify(signed["claims"]!, secret: secret, now: now)
        XCTAssertEqual(c["publish"], .array([.string("a.*")]))
        XCTAssertEqual(c["subscribe"], .array([]))
        XCTAssertEqual(c["n"], .number("1.5"))
    }
}
