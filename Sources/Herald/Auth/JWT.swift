// HS256 JSON Web Tokens (RFC 7519, RFC 7515): signature checked in constant time with the
// configured secret, `exp` and `nbf` enforced, claims handed back as JSON. A token has one
// spelling: its base64url must be canonical, and a header naming `crit` extensions is refused.
import Crypto
import FoundationEssentials

public enum JWT {
    public enum Failure: Error, Equatable {
        case malformed(String)
        case badSignature
        case expired
        case notYetValid
    }

    /// Verifies `token` with `secret` at `now` (Unix seconds) and returns its claims.
    public static func verify(_ token: String, secret: [UInt8], now: Double) throws(Failure) -> JSONValue {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("a JWT has three dot-separated parts") }
        guard let headerBytes = base64URL(parts[0]), let header = try? JSONValue.parse(headerBytes) else {
            throw .malformed("the JWT header is not base64url JSON")
        }
        guard header["alg"]?.stringValue == "HS256" else { throw .malformed("only HS256 tokens are accepted") }
        // RFC 7515 §4.1.11: every name `crit` lists must be understood, and Herald understands
        // no extension; an empty or malformed `crit` is invalid too. So any `crit` is refused.
        guard header["crit"] == nil else {
            throw .malformed("the JWT header lists critical extensions (crit), which Herald does not support")
        }
        guard let payloadBytes = base64URL(parts[1]), let claims = try? JSONValue.parse(payloadBytes), case .object = claims else {
            throw .malformed("the JWT payload is not a base64url JSON object")
        }
        guard let signature = base64URL(parts[2]) else { throw .malformed("the JWT signature is not base64url") }
        let key = SymmetricKey(data: secret)
        let signed = Array("\(parts[0]).\(parts[1])".utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed, using: key) else {
            throw .badSignature
        }
        // RFC 7519 §4.1.4-5: NumericDate. Anything else there (a string, say) is refused, not
        // ignored, or a token with `"exp":"1970"` would never expire.
        for claim in ["exp", "nbf"] where claims[claim] != nil {
            guard case .number(let text)? = claims[claim], Double(text) != nil else {
                throw .malformed("the \(claim) claim must be a number of seconds")
            }
        }
        if case .number(let text)? = claims["exp"], let exp = Double(text), now >= exp { throw .expired }
        if case .number(let text)? = claims["nbf"], let nbf = Double(text), now < nbf { throw .notYetValid }
        return claims
    }

    /// Signs `claims` (for tests and tooling).
    public static func sign(_ claims: JSONValue, secret: [UInt8]) -> String {
        let header = base64URLEncode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = base64URLEncode(claims.serialized)
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(header).\(payload)".utf8), using: SymmetricKey(data: secret))
        return "\(header).\(payload).\(base64URLEncode(Array(mac)))"
    }

    /// Decodes unpadded base64url (RFC 7515 §2) in its one canonical spelling, else nil: only
    /// the URL-safe alphabet (no `=`, `+`, `/`, whitespace), no length of 4n+1, and the unused
    /// low bits of the last character zero (RFC 4648 §3.5). Otherwise `...A` and `...B` would
    /// be two spellings of one signature, and a token could be re-spelled past a deny list.
    static func base64URL<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count * 3 / 4)
        var pending: UInt32 = 0  // bits read but not yet emitted, right-aligned
        var pendingCount = 0  // bits in `pending`: 0, 2, 4 or 6 between characters
        for c in text.utf8 {
            let value: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): value = 62
            case UInt8(ascii: "_"): value = 63
            default: return nil
            }
            pending = pending << 6 | UInt32(value)
            pendingCount += 6
            if pendingCount >= 8 {
                pendingCount -= 8
                bytes.append(UInt8(truncatingIfNeeded: pending >> UInt32(pendingCount)))
                pending &= (1 << UInt32(pendingCount)) - 1
            }
        }
        // Left over: 0, 4 or 2 bits of padding, which must be zero; 6 bits is a 4n+1 length.
        guard pendingCount < 6, pending == 0 else { return nil }
        return bytes
    }

    static func base64URLEncode(_ bytes: [UInt8]) -> String {
        String(Data(bytes).base64EncodedString().compactMap { $0 == "=" ? nil : $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }
}
