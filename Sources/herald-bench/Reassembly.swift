// Inbound bytes of one connection. A read is parsed where it landed (the worker's scratch
// space); only the tail of an incomplete message is copied and kept for the next read.

/// Leftover bytes of a partial message. Confined to its connection.
struct Reassembly {
    private var pending: [UInt8] = []

    /// Hands `parse` the leftover plus `bytes`; keeps what `parse` did not consume (it returns
    /// how many bytes it consumed).
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ parse: (UnsafeRawBufferPointer) -> Int) {
        if pending.isEmpty {
            let used = parse(bytes)
            if used < bytes.count { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[used...])) }
        } else {
            pending.append(contentsOf: bytes)
            let used = pending.withUnsafeBytes { parse($0) }
            if used >= pending.count {
                pending = []
            } else if used > 0 {
                pending.removeFirst(used)
            }
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Offset of the first occurrence of `pattern` at or after `from`, or nil.
    func firstOffset(of pattern: StaticString, from: Int = 0) -> Int? {
        let n = pattern.utf8CodeUnitCount
        let p = pattern.utf8Start
        guard n > 0, count >= n else { return nil }
        var i = from
        let end = count - n
        while i <= end {
            if self[i] == p[0] {
                var k = 1
                while k < n && self[i + k] == p[k] { k += 1 }
                if k == n { return i }
            }
            i += 1
        }
        return nil
    }

    /// Whether the bytes at `offset` are `pattern`.
    func matches(_ pattern: StaticString, at offset: Int) -> Bool {
        let n = pattern.utf8CodeUnitCount
        guard offset >= 0, offset + n <= count else { return false }
        let p = pattern.utf8Start
        for k in 0..<n where self[offset + k] != p[k] { return false }
        return true
    }
}
