// The envelopes of a token's life on a long-lived connection (README, "Token lifetime"):
// the warning before `exp`, the answer to a `refresh` op, and the end of what a refresh took away.

extension Envelope {
    /// `{"type":"token_expiring","in":s}`: the token runs out in `s` seconds; send a refresh.
    static func tokenExpiring(in seconds: Int) -> [UInt8] {
        answer("token_expiring", id: nil) { $0.field("in", seconds) }
    }

    /// `{"type":"refreshed","exp":t}` (t in Unix seconds, null for a token without `exp`).
    static func refreshed(expiresAt: Double?, id: JSONValue?) -> [UInt8] {
        answer("refreshed", id: id) { o in
            if let expiresAt {
                o.field("exp", json: Array(numberText(expiresAt).utf8))
            } else {
                o.field("exp", json: Array("null".utf8))
            }
        }
    }

    /// `{"type":"unsubscribed","kind":k,"names":[..],"reason":"forbidden"}`: subscriptions a
    /// refreshed token no longer covers, ended by Herald (`kind` is also `stream` or `queue`).
    static func revoked(kind: String, names: [String]) -> [UInt8] {
        answer("unsubscribed", id: nil) { o in
            o.field("kind", kind)
            o.field("names", strings: names)
            o.field("reason", "forbidden")
        }
    }

    /// A Unix time as JSON: whole seconds without a fraction (`1700000000`, not `1.7e9`).
    private static func numberText(_ seconds: Double) -> String {
        if seconds == seconds.rounded(), abs(seconds) < 1e15 { return String(Int64(seconds)) }
        return String(seconds)
    }
}
