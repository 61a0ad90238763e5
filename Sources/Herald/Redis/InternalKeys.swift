// The Redis key space Herald keeps for itself (queue workers' processing lists and lease
// registries, see QueueKeys). A client writing there could break lease renewal and reaping, or
// read another queue's held items, so no key a client names may start with the prefix.

public enum InternalKeys {
    /// Every key Herald creates on its own starts with this.
    public static let prefix = "herald:"

    /// Whether `name`, named by a client as a key (queue, stream), falls in Herald's own space.
    /// By bytes, as Redis compares keys.
    public static func isReserved(_ name: RedisName) -> Bool {
        name.bytes.starts(with: prefix.utf8)
    }
}
