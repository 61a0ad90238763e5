// The ways a byte stream can arrive in pieces, for sans-I/O parsers that must give the same
// answer however TCP cuts the bytes.

public enum ByteSplits {
    /// Every two-piece cut of `bytes` (cut at 0 through count), then byte-at-a-time delivery.
    public static func all(_ bytes: [UInt8]) -> [[[UInt8]]] {
        var splits: [[[UInt8]]] = (0...bytes.count).map { [Array(bytes[..<$0]), Array(bytes[$0...])] }
        splits.append(bytes.map { [$0] })
        return splits
    }
}
