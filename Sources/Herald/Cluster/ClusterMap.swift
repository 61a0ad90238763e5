// Which node serves which slot, read from CLUSTER SLOTS and patched by MOVED redirects.

/// A slot table; a value, so each loop holds its own copy.
public struct ClusterMap: Sendable {
    /// Masters, as `host:port` addresses.
    public private(set) var nodes: [String] = []
    /// Index into `nodes` per slot; -1 when no node serves the slot.
    private var owners = [Int](repeating: -1, count: SlotHash.slotCount)

    public init() {}

    /// Builds the table from a CLUSTER SLOTS reply; nil when the reply is not one.
    public init?(slotsReply reply: RedisReply) {
        guard case .array(let ranges) = reply else { return nil }
        for range in ranges {
            guard case .array(let parts) = range, parts.count >= 3,
                let start = parts[0].integer, let end = parts[1].integer,
                case .array(let master) = parts[2], master.count >= 2,
                let host = master[0].text, let port = master[1].integer,
                start >= 0, end < SlotHash.slotCount, start <= end
            else { return nil }
            let index = self.index(of: "\(host.isEmpty ? "127.0.0.1" : host):\(port)")
            for slot in start...end { owners[slot] = index }
        }
        if nodes.isEmpty { return nil }
    }

    private mutating func index(of address: String) -> Int {
        if let i = nodes.firstIndex(of: address) { return i }
        nodes.append(address)
        return nodes.count - 1
    }

    /// The `host:port` serving `slot`, if known.
    public func owner(of slot: Int) -> String? {
        let i = owners[slot]
        return i >= 0 ? nodes[i] : nil
    }

    /// Applies a `MOVED <slot> <host:port>` redirect.
    public mutating func moved(slot: Int, to address: String) {
        owners[slot] = index(of: address)
    }

    /// Whether every slot has an owner.
    public var coversAllSlots: Bool { !owners.contains(-1) }
}

/// A MOVED or ASK error reply, parsed.
public struct Redirect: Equatable, Sendable {
    public enum Kind: Sendable { case moved, ask }
    public let kind: Kind
    public let slot: Int
    /// `host:port` to go to.
    public let address: String

    public init?(_ error: String) {
        let parts = error.split(separator: " ")
        guard parts.count == 3, let slot = Int(parts[1]), (0..<SlotHash.slotCount).contains(slot) else { return nil }
        switch parts[0] {
        case "MOVED": kind = .moved
        case "ASK": kind = .ask
        default: return nil
        }
        self.slot = slot
        var address = String(parts[2])
        if address.hasPrefix(":") { address = "127.0.0.1" + address }
        self.address = address
    }
}

extension RedisEndpoint {
    /// This endpoint's credentials on another node (`host:port`) of the same cluster.
    public func node(_ address: String) -> RedisEndpoint {
        var copy = self
        if let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) {
            copy.host = String(address[..<colon])
            copy.port = port
        }
        copy.database = 0
        return copy
    }

    public var address: String { "\(host):\(port)" }
}
