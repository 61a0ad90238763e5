// What stream readers and consumer-group members are handed when they are built (by the loop's
// LoopServices): the few services they use, so they reach nothing else of the loop.

/// What stream readers and consumer-group members use.
struct StreamServices {
    let redis: CommandSender
    /// The loop's one tail over every live stream.
    let tailer: StreamTailer
    /// For retries and the group's claim timer.
    let loop: EventLoop
    /// `--claim-idle`, ms.
    let claimIdleMs: Int64
    /// `--max-outbound`: a reader joins the live tail only while half of it is free.
    let maxOutbound: Int
    /// For acks that wait for replicas (WAIT blocks its connection); none: such acks fail.
    var blocking: BlockingPool? = nil
}
