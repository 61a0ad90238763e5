// The Redis Cluster key slot: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384.

public enum SlotHash {
    public static let slotCount = 16384

    private static let table: [UInt16] = (0..<256).map { byte in
        var crc = UInt16(byte) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }

    public static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes { crc = (crc << 8) ^ table[Int((crc >> 8) ^ UInt16(byte))] }
        return crc
    }

    /// The slot of `key`: only the part between the first `{` and the next `}` counts, when
    /// that part is non-empty (so `{user1}.a` and `{user1}.b` share a slot).
    public static func slot(_ key: [UInt8]) -> Int {
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            return Int(crc16(key[(open + 1)..<close])) % slotCount
        }
        return Int(crc16(key)) % slotCount
    }

    /// A hash tag `T` such that a key holding `{T}` lands in `key`'s slot: the key's own tag
    /// when it has one, else the whole key; nil when the key has no tag but holds a `}` (no
    /// `{T}` can carry it).
    public static func tag(of key: [UInt8]) -> ArraySlice<UInt8>? {
        if let open = key.firstIndex(of: UInt8(ascii: "{")),
            let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            return key[(open + 1)..<close]
        }
        return key.contains(UInt8(ascii: "}")) ? nil : key[...]
    }

    /// `tag(of:)` for text.
    public static func tag(of key: String) -> String? {
        let bytes = Array(key.utf8)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
            let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            return String(decoding: bytes[(open + 1)..<close], as: UTF8.self)
        }
        return bytes.contains(UInt8(ascii: "}")) ? nil : key
    }
}
