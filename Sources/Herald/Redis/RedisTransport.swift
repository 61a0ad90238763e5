// How a Redis link's bytes travel: as they are over its socket (redis://), or through a TLS
// session on it (rediss://). hiredis formats the commands into its output buffer and parses
// the replies either way; only the bytes' way in and out differs.
import CHiredis
import COpenSSL
import Glibc

/// A Redis link's transport; confined to the link's loop.
enum RedisTransport {
    case plain
    case tls(TLSSession)

    /// Reads what has arrived into `buffer`. A count short of the buffer means the transport
    /// holds nothing more for now.
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> TLSSession.ReadResult {
        guard case .tls(let session) = self else {
            switch Socket.read(fd, into: buffer) {
            case .bytes(let n): return .bytes(n)
            case .wouldBlock: return .wouldBlock
            case .closed: return .closed
            case .failed(let error): return .failed("\(error)")
            }
        }
        return session.read(into: buffer)
    }

    /// Writes as much of hiredis's output buffer as the socket takes and drops it from the
    /// buffer. Returns whether the buffer is empty, or the reason the link failed.
    func flush(_ ctx: UnsafeMutablePointer<redisContext>) -> Result<Bool, TransportFailure> {
        guard case .tls(let session) = self else {
            var done: Int32 = 0
            guard redisBufferWrite(ctx, &done) != REDIS_ERR else {
                return .failure(TransportFailure(reason: RedisTransport.errorString(ctx)))
            }
            return .success(done != 0)
        }
        while case let count = herald_obuf_length(ctx.pointee.obuf), count > 0 {
            switch session.write(ctx.pointee.obuf, count: count) {
            case .wrote(let n): herald_obuf_consume(&ctx.pointee.obuf, n)
            case .waiting: return .success(false)
            case .failed(let reason): return .failure(TransportFailure(reason: reason))
            }
        }
        return .success(true)
    }

    var isTLS: Bool {
        guard case .tls = self else { return false }
        return true
    }

    /// Something a read would return although the socket may not be readable (see
    /// `TLSSession.hasBufferedInput`); level-triggered epoll would not report it.
    var hasBufferedInput: Bool {
        guard case .tls(let session) = self else { return false }
        return session.hasBufferedInput
    }

    /// The last read stopped until the socket is writable.
    var readWantsWrite: Bool {
        guard case .tls(let session) = self else { return false }
        return session.readWantsWrite
    }

    /// The last write stopped until the socket is readable.
    var writeWantsRead: Bool {
        guard case .tls(let session) = self else { return false }
        return session.writeWantsRead
    }

    static func errorString(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafePointer(to: &ctx.pointee.errstr) {
            String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
        }
    }
}

/// Why a transport write failed, for the link's log line and `lastError`.
struct TransportFailure: Error {
    let reason: String
}
