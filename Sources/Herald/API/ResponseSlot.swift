// One request's place in its connection's answer order (HTTP/1.1 pipelining answers in
// request order, RFC 9112 §9.3.2), filled when its handler responds, maybe after Redis.

/// The place of one request's answer in its connection's order; confined to its loop.
final class ResponseSlot {
    var keepAlive: Bool
    /// HEAD: the answer's body is not sent.
    let head: Bool
    /// The browser origin allowed to read this answer (CORS), if any.
    var corsOrigin: String?
    /// For the access log: the request and when it was parsed (monotonic µs).
    var access: (method: String, target: String, started: Int64)?
    /// The serialised answer, once the handler has responded.
    var answer: Chunk?
    /// The client will never read this answer: it left, or an earlier answer closed the
    /// connection before this one.
    private(set) var abandoned = false
    /// Told once if the slot is abandoned before it is answered (a waiting pop stops waiting).
    var onAbandon: (() -> Void)?

    init(keepAlive: Bool, head: Bool) {
        self.keepAlive = keepAlive
        self.head = head
    }

    func abandon() {
        guard !abandoned else { return }
        abandoned = true
        let told = onAbandon
        onAbandon = nil
        told?()
    }
}
