// Errors from POSIX calls, carrying the call and errno so a log line reads `accept(): EMFILE`.
import Glibc

/// A failed system call: which call, and the errno it left.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    /// The system call that failed, e.g. `bind`.
    public let call: String
    /// The errno value the call left.
    public let code: Int32

    public init(_ call: String, code: Int32 = errno) {
        self.call = call
        self.code = code
    }

    public var description: String { "\(call)(): \(String(cString: strerror(code)))" }
}
