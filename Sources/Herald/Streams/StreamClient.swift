// What a stream reader or a consumer-group member needs of its client: the client's connection
// implements it (Server/), so Streams depends on no connection type.

/// The client a stream is read for; confined to its loop.
protocol StreamClient: AnyObject {
    /// Whether the client is gone (nothing sent reaches it).
    var isClosed: Bool { get }
    /// An answer or notice as JSON, in the client's wire form: never dropped.
    func sendMessage(_ json: [UInt8])
    /// Whether `bytes` more fit in the client's outbound queue (lossless senders check first).
    func hasRoom(for bytes: Int) -> Bool
    /// A stream entry in the client's wire form if it fits (counted as a delivery); false, and
    /// nothing sent, when it does not. With `checkedRoom` the sender already made sure a whole
    /// page fits, and the entry always goes.
    @discardableResult
    func sendEntry(_ entry: StreamEntry, checkedRoom: Bool) -> Bool
}

extension StreamClient {
    @discardableResult
    func sendEntry(_ entry: StreamEntry) -> Bool { sendEntry(entry, checkedRoom: false) }
}
