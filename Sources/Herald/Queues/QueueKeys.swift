// Where a queue's worker bookkeeping lives in Redis: the processing lists and the lease
// registry. Each key sits in the queue's own hash slot (BLMOVE, LMOVE and the lease scripts
// need one slot on a Redis Cluster) and names its queue exactly, so no two queues share one:
//   queue `jobs`       -> herald:processing:{jobs}:4:jobs:<id>,        herald:consumers:{jobs}:4:jobs
//   queue `jobs{eu}`   -> herald:processing:{eu}:8:jobs{eu}:<id>,      herald:consumers:{eu}:8:jobs{eu}
//   queue `a}b`        -> herald:processing:{<slot tag>}:3:a}b:<id>,   herald:consumers:{<slot tag>}:3:a}b
// `{T}` puts a key in the queue's slot: T is the queue's own hash tag, or the whole name when it
// has none; a name with a `}` outside a tag (no `{T}` can carry it) gets a short tag of the same
// slot from a table. The name follows with its length in bytes. The mapping is one to one: T
// never holds `}`, so the first `}` ends it; the length then says where the name ends, whatever
// the name holds (`:`, `{`, `}`, digits). Up to Herald 0.4.0 the keys were `herald:consumers:{jobs}`
// and `herald:consumers:{eu}:jobs{eu}`, which two names could share (`jobs{eu}` and
// `eu}:jobs{eu}`); they are not read any more (README, "Upgrading").

public enum QueueKeys {
    /// The hash tag of `queue`'s keys: a non-empty string without `}` whose slot is the queue's.
    /// Presence keys (PresenceKeys) and idempotency keys tag a name the same way.
    static func tag(_ queue: RedisName) -> [UInt8] {
        if let tag = SlotHash.tag(of: queue.bytes), !tag.isEmpty { return Array(tag) }
        return Array(slotTags[SlotHash.slot(queue.bytes)].utf8)
    }

    /// The part after a key's prefix: the slot's `{tag}`, then the queue's name, length first.
    static func scope(_ queue: RedisName) -> [UInt8] {
        [UInt8(ascii: "{")] + tag(queue) + Array("}:\(queue.bytes.count):".utf8) + queue.bytes
    }

    /// `tag` and `scope` of a name given as text (its UTF-8 bytes), for keys built as text.
    static func tag(_ name: String) -> String { String(decoding: tag(RedisName(name)), as: UTF8.self) }
    static func scope(_ name: String) -> String { String(decoding: scope(RedisName(name)), as: UTF8.self) }

    /// The sorted set of `queue`'s leased processing lists.
    public static func registry(_ queue: RedisName) -> RedisName {
        RedisName(bytes: Array((InternalKeys.prefix + "consumers:").utf8) + scope(queue))
    }

    /// A worker's processing list for `queue`.
    public static func processingList(_ queue: RedisName, id: String) -> RedisName {
        RedisName(bytes: Array((InternalKeys.prefix + "processing:").utf8) + scope(queue) + Array(":\(id)".utf8))
    }

    /// One tag per slot, for names that cannot lend theirs: for each slot, the first of `0`,
    /// `1`, .. (base 36) that hashes there. Built once (about 170,000 short CRCs), the same in
    /// every Herald, as every Herald must name a queue's keys alike.
    private static let slotTags: [String] = {
        var tags = [String](repeating: "", count: SlotHash.slotCount)
        var left = SlotHash.slotCount
        var n = 0
        while left > 0 {
            let candidate = String(n, radix: 36)
            let slot = Int(SlotHash.crc16(candidate.utf8)) % SlotHash.slotCount
            if tags[slot].isEmpty {
                tags[slot] = candidate
                left -= 1
            }
            n += 1
        }
        return tags
    }()
}
