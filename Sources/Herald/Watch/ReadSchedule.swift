// Which watched keys need a read, and for whom: the coalescing behind watches. Any number of
// changes to one key while it waits, or while its read is in flight, make one more read, never
// more: a key written 100,000 times a second costs about one read per round trip to Redis, and
// the last read always starts after the last change seen, so watchers converge on the value
// Redis holds. Pure (no I/O, no loop), so unit tests drive it.

/// The watched target a notification came through: one key, or a pattern of keys.
enum WatchTarget: Hashable {
    case key([UInt8])
    case pattern([UInt8])
}

/// Who gets the result of one read of a key.
struct ReadAudience {
    /// Every member of these targets gets the new value (as a change).
    var targets: Set<WatchTarget> = []
    /// Watchers that get the value as a snapshot (`kind` `none` for a missing key), with the
    /// tickets of the ops waiting for it.
    var snapshots: [ObjectIdentifier: [Int]] = [:]
    /// Watchers that fell behind (their queue was full) and get the current value as a change.
    var catchUps: Set<ObjectIdentifier> = []
    /// The key's time to live ran out among the changes read: a missing key is `expired`.
    var expired = false

    mutating func merge(_ other: ReadAudience) {
        targets.formUnion(other.targets)
        snapshots.merge(other.snapshots) { $0 + $1 }
        catchUps.formUnion(other.catchUps)
        expired = expired || other.expired
    }
}

/// Keys waiting for a read and keys being read; confined to its loop.
struct ReadSchedule {
    /// Keys to read, with who gets each result.
    private(set) var waiting: [[UInt8]: ReadAudience] = [:]
    /// The order keys started waiting in, so a cap on reads per tick is fair.
    private var queue: [[UInt8]] = []
    /// Keys whose read is in flight, with who gets its result.
    private(set) var reading: [[UInt8]: ReadAudience] = [:]

    /// Adds `audience` to `key`'s next read.
    mutating func add(_ key: [UInt8], _ audience: ReadAudience) {
        if var held = waiting[key] {
            held.merge(audience)
            waiting[key] = held
        } else {
            waiting[key] = audience
            queue.append(key)
        }
    }

    /// A notification: `key` changed (`expired`: its time to live ran out), seen through `target`.
    mutating func changed(_ key: [UInt8], via target: WatchTarget, expired: Bool) {
        var audience = ReadAudience(targets: [target])
        audience.expired = expired
        add(key, audience)
    }

    /// Up to `limit` keys to read now, oldest first; each moves to `reading`. A key whose read
    /// is in flight stays waiting until that read is finished. Fewer than `limit` keys taken
    /// means none is left to read now.
    mutating func take(limit: Int) -> [[UInt8]] {
        var taken: [[UInt8]] = []
        var kept: [[UInt8]] = []
        var index = queue.startIndex
        while index < queue.endIndex && taken.count < limit {
            let key = queue[index]
            index += 1
            guard let audience = waiting[key] else { continue }
            if reading[key] == nil {
                waiting[key] = nil
                reading[key] = audience
                taken.append(key)
            } else {
                kept.append(key)
            }
        }
        queue = kept + queue[index...]
        return taken
    }

    /// `key`'s read is answered: its audience, and whether another read of it waits.
    mutating func finished(_ key: [UInt8]) -> ReadAudience {
        reading.removeValue(forKey: key) ?? ReadAudience()
    }

    /// A read that got no answer goes back to waiting, merged with what came meanwhile.
    mutating func retry(_ key: [UInt8]) {
        guard let audience = reading.removeValue(forKey: key) else { return }
        if let later = waiting[key] {
            var merged = audience
            merged.merge(later)
            waiting[key] = merged
            queue.removeAll { $0 == key }
        } else {
            waiting[key] = audience
        }
        // First again: it waited longest (and retries are rare, so the shift costs little).
        queue.insert(key, at: 0)
    }

    /// Whether `watcher` waits for a snapshot (or a catch-up) of `key` from a read not started:
    /// a change read now would only tell it an older value first.
    func awaitsLaterRead(_ watcher: ObjectIdentifier, of key: [UInt8]) -> Bool {
        guard let audience = waiting[key] else { return false }
        return audience.snapshots[watcher] != nil || audience.catchUps.contains(watcher)
    }

    /// Forgets `watcher` (gone); returns the tickets it held.
    mutating func forget(_ watcher: ObjectIdentifier) -> [Int] {
        var tickets: [Int] = []
        for (key, var audience) in waiting where audience.snapshots[watcher] != nil || audience.catchUps.contains(watcher) {
            tickets += audience.snapshots.removeValue(forKey: watcher) ?? []
            audience.catchUps.remove(watcher)
            waiting[key] = audience
        }
        for (key, var audience) in reading where audience.snapshots[watcher] != nil || audience.catchUps.contains(watcher) {
            tickets += audience.snapshots.removeValue(forKey: watcher) ?? []
            audience.catchUps.remove(watcher)
            reading[key] = audience
        }
        return tickets
    }
}
