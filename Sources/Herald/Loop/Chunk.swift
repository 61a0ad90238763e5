// An immutable, reference-counted block of bytes with a stable address, so one encoded frame
// can sit in many clients' outbound queues at once and be handed to writev without copying.
import Glibc

/// Bytes encoded once and shared by every queue that holds them.
public final class Chunk {
    public let base: UnsafeMutableRawPointer
    public let count: Int

    public init(_ bytes: [UInt8]) {
        count = bytes.count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 1)
        bytes.withUnsafeBytes { if count > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: count) } }
    }

    deinit { base.deallocate() }

    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: count)) }
}
