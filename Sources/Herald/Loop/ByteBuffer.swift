// Inbound bytes with a reader index, so parsers consume without copying what remains.
/// A growable byte buffer read from the front. Value type; confined to its owner.
public struct ByteBuffer {
    public private(set) var storage: [UInt8] = []
    /// Index of the first unread byte in `storage`.
    public private(set) var readerIndex = 0

    public init() {}
    public init(_ bytes: [UInt8]) { storage = bytes }

    public var readableCount: Int { storage.count - readerIndex }
    public var isEmpty: Bool { readableCount == 0 }

    public subscript(offset: Int) -> UInt8 { storage[readerIndex + offset] }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if readerIndex > 0 && readerIndex == storage.count {
            storage.removeAll(keepingCapacity: true)
            readerIndex = 0
        }
        storage.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Returns the next `count` readable bytes and consumes them.
    public mutating func read(_ count: Int) -> [UInt8] {
        let bytes = Array(storage[readerIndex..<readerIndex + count])
        readerIndex += count
        return bytes
    }

    public mutating func skip(_ count: Int) {
        readerIndex += count
    }

    /// Readable bytes from `offset`, without consuming.
    public func peek(_ offset: Int, _ count: Int) -> ArraySlice<UInt8> {
        storage[(readerIndex + offset)..<(readerIndex + offset + count)]
    }

    /// Offset (from the reader index) of the first occurrence of `pattern` at or after `from`.
    public func firstIndex(of pattern: [UInt8], from: Int = 0) -> Int? {
        let n = pattern.count
        var i = readerIndex + from
        let end = storage.count - n
        while i <= end {
            if storage[i] == pattern[0] {
                var match = true
                for k in 1..<n where storage[i + k] != pattern[k] { match = false; break }
                if match { return i - readerIndex }
            }
            i += 1
        }
        return nil
    }

    /// Drops consumed bytes; gives memory back when nothing is left, so an idle connection
    /// holds no buffer, unless the buffer is at most `keeping` bytes (a busy HTTP connection
    /// reuses its small buffer for the next request instead of allocating one per read).
    public mutating func reclaim(keeping: Int = 0) {
        if readerIndex == storage.count {
            if storage.capacity <= keeping { storage.removeAll(keepingCapacity: true) } else { storage = [] }
            readerIndex = 0
        } else if readerIndex > 4096 && readerIndex * 2 > storage.count {
            storage.removeFirst(readerIndex)
            readerIndex = 0
        }
    }
}
