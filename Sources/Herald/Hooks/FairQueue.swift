// A queue that serves its owners in turn: each owner's items in the order they came, owners
// round robin. One owner with a thousand items waiting delays another's first item by at most
// one item of each owner ahead of it, not by the thousand.

struct FairQueue<Owner: Hashable, Item> {
    /// Every owner with items waiting, and its items from `head` on.
    private var queues: [Owner: (items: [Item], head: Int)] = [:]
    /// Owners in the order they are served; an owner is in it once for as long as it waits.
    private var turns: [Owner] = []
    private var turnsHead = 0
    /// Items waiting, over every owner.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Items of `owner` waiting.
    func count(of owner: Owner) -> Int {
        queues[owner].map { $0.items.count - $0.head } ?? 0
    }

    mutating func append(_ item: Item, for owner: Owner) {
        if queues[owner] != nil {
            queues[owner]!.items.append(item)
        } else {
            queues[owner] = ([item], 0)
            turns.append(owner)
        }
        count += 1
    }

    /// The first waiting item of the owner whose turn it is; that owner goes to the back of the
    /// line if it has more.
    mutating func next() -> Item? {
        guard count > 0 else { return nil }
        let owner = turns[turnsHead]
        turnsHead += 1
        var queue = queues.removeValue(forKey: owner)!
        let item = queue.items[queue.head]
        queue.head += 1
        count -= 1
        if queue.head < queue.items.count {
            if queue.head >= 64 && queue.head * 2 >= queue.items.count {
                queue.items.removeFirst(queue.head)
                queue.head = 0
            }
            queues[owner] = queue
            turns.append(owner)
        }
        if turnsHead == turns.count {
            turns.removeAll(keepingCapacity: true)
            turnsHead = 0
        } else if turnsHead >= 64 && turnsHead * 2 >= turns.count {
            turns.removeFirst(turnsHead)
            turnsHead = 0
        }
        return item
    }
}
