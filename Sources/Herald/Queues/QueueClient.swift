// What a queue worker needs of its client: its connection implements it (Server/), so Queues
// depends on no connection type.

/// The client items are handed to; confined to its loop.
protocol QueueClient: AnyObject {
    /// Whether the client is gone (nothing sent reaches it).
    var isClosed: Bool { get }
    /// An answer or notice as JSON, in the client's wire form: never dropped.
    func sendMessage(_ json: [UInt8])
}
