// HS256 JSON Web Tokens (RFC 7519, RFC 7515): signature checked in constant time with the
// configured secret, `exp` and `nbf` enforced, claims handed back as JSON.
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

    static func base64URL<S: StringProtocol>(_ text: S) -> [UInt8]? {
        guard !text.contains("=") else { return nil }
        var s = String(text.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map { Array($0) }
    }

    static func base64URLEncode(_ bytes: [UInt8]) -> String {
        String(Data(bytes).base64EncodedString().compactMap { $0 == "=" ? nil : $0 == "+" ? "-" : $0 == "/" ? "_" : $0 })
    }
}
