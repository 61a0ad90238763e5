// Who a presence member is: the `user` and `info` other members see. Set once per connection,
// by whoever vouches for it: a JWT's `sub` and `info` claims, or (auth off) the client's own
// `user=` query, which nothing checks.

/// A connection's presence identity; both parts may be absent.
public struct PresenceIdentity: Equatable, Sendable {
    /// The user name; nil for an anonymous client (not counted in `users`).
    public var user: String?
    /// Free JSON about the member (a display name, an avatar), shown to other members.
    public var info: JSONValue?

    public init(user: String? = nil, info: JSONValue? = nil) {
        self.user = user
        self.info = info
    }

    /// Longest `user=` accepted from a query, in bytes.
    public static let maxUserBytes = 256
}
