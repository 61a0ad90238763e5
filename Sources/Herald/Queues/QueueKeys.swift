// Where a queue's worker bookkeeping lives in Redis: the processing lists and the lease
// registry, always in the queue's own hash slot so that BLMOVE, LMOVE and the lease scripts
// work on a Redis Cluster.
//   queue `jobs`       -> herald:processing:{jobs}:<id>,          herald:consumers:{jobs}
//   queue `jobs{eu}`   -> herald:processing:{eu}:jobs{eu}:<id>,   herald:consumers:{eu}:jobs{eu}
// A queue with a tag of its own is hashed by that tag, so the keys carry the same tag and the
// queue's full name. A name holding `}` outside a tag cannot be co-located: it keeps the plain
// form (fine on one Redis; on a cluster its workers get Redis's CROSSSLOT error).

public enum QueueKeys {
    /// The part after the key's prefix that puts it in `queue`'s slot and names the queue.
    private static func scope(_ queue: String) -> String {
        guard let tag = SlotHash.tag(of: queue), tag != queue else { return "{\(queue)}" }
        return "{\(tag)}:\(queue)"
    }

    /// The sorted set of `queue`'s leased processing lists.
    public static func registry(_ queue: String) -> String { "herald:consumers:" + scope(queue) }

    /// A worker's processing list for `queue`.
    public static func processingList(_ queue: String, id: String) -> String { "herald:processing:" + scope(queue) + ":" + id }
}
