// An immutable, reference-counted block of bytes with a stable address, so one encoded frame
// can sit in many clients' outbound queues at once and be handed to writev without copying.
// The bytes live in the object's own allocation (one malloc per chunk, not two).

/// Bytes encoded once and shared by every queue that holds them. The header is the length.
public final class Chunk: ManagedBuffer<Int, UInt8> {
    /// A chunk of `count` bytes written by `fill`, which must initialise all of them.
    public static func make(count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) -> Chunk {
        let chunk = unsafeDowncast(Chunk.create(minimumCapacity: max(count, 1)) { _ in count }, to: Chunk.self)
        chunk.withUnsafeMutablePointerToElements { fill(UnsafeMutableRawBufferPointer(start: $0, count: count)) }
        return chunk
    }

    /// A chunk holding a copy of `bytes`.
    public static func of(_ bytes: [UInt8]) -> Chunk {
        make(count: bytes.count) { out in bytes.withUnsafeBytes { out.copyMemory(from: $0) } }
    }

    public var count: Int { header }

    /// Start of the bytes; valid while the chunk is alive (they never move).
    public var base: UnsafeMutableRawPointer {
        withUnsafeMutablePointerToElements { UnsafeMutableRawPointer($0) }
    }

    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: count)) }
}
