// One bench thread: its own Herald EventLoop, a share of the subscribers and publishers, its own
// latency histograms. Shared nothing with the other threads: the main thread sees only its
// `LoopTotals` while it runs and reads the rest after the thread has ended.
import Glibc
import Herald
import Histogram

/// A bench loop. Everything but `totals`, `handle` and the `let`s is confined to its thread
/// while it runs; the main thread reads results only after joining it.
final class BenchWorker: @unchecked Sendable {
    let options: Options
    let control: Control
    let totals = LoopTotals()
    let handle = LoopHandle()
    /// Global indices of the subscribers this loop opens.
    let subscriberIndices: [Int]
    let publisherCount: Int
    /// This loop's share of `--rate`, publishes per second (0: flat out).
    let rate: Double
    /// This loop's share of `--count` (0: no limit).
    let countLimit: Int
    /// Connects this loop keeps in progress at once (until confirmed or failed).
    let connectLimit: Int
    let serverAddress: in_addr
    /// Read space shared by this loop's sockets.
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)

    private(set) var loop: EventLoop!
    private(set) var subscribers: [SubscriberConnection] = []
    private var publishers: [PublisherConnection] = []
    private var nextSubscriber = 0
    private var connectsInProgress = 0

    /// Delivery latency, microseconds.
    private(set) var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    /// Publish round trip (request written to answer read), microseconds.
    private(set) var publishLatency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
    private(set) var received = 0
    /// Bytes of data frames received (headers included): what deliveries took on the wire.
    var wireBytes = 0
    /// Inflates compressed deliveries (each stands alone: Herald keeps no context).
    private let inflater = MessageInflater(contextTakeover: false)
    /// The last compressed payload and what it inflated to.
    private var lastCompressed: [UInt8] = []
    private var lastInflated: [UInt8] = []

    /// A compressed delivery inflated. Every subscriber of a channel gets the same bytes, so
    /// a repeat of the last payload reuses its result: one loop of the bench then keeps up with
    /// the gateway's fan-out (an inflate per subscriber would make the bench the bottleneck).
    func inflated(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        if payload.elementsEqual(lastCompressed) { return lastInflated }
        guard let inflated = try? inflater.inflate(Array(payload), limit: 1 << 26) else { return nil }
        lastCompressed = Array(payload)
        lastInflated = inflated
        return inflated
    }
    /// Deliveries whose payload carried no readable send time.
    private(set) var untimed = 0
    /// Deliveries of messages sent before this run (replayed from a store).
    var stale = 0
    /// Deliveries Herald reported dropped (`{"type":"dropped","count":n}`).
    var droppedNotices = 0
    /// Other frames (errors, gaps, anything not a delivery or a confirmation).
    var otherMessages = 0
    private(set) var subscribedCount = 0
    /// Global indices of the subscribers confirmed (for the expected delivery count).
    private(set) var confirmedIndices: [Int] = []
    private(set) var failedCount = 0
    /// Confirmed subscribers that were closed before the end.
    private(set) var disconnected = 0
    private(set) var published = 0
    private(set) var publishErrors = 0
    /// Successful publishes per channel index (for the expected delivery count).
    private(set) var publishedPerChannel: [Int]
    private(set) var lastDeliveryNs: UInt64 = 0
    private(set) var lastAnswerNs: UInt64 = 0
    /// First few error messages, for the report.
    private(set) var errors: [String: Int] = [:]
    /// Deliveries of messages sent before this are stale.
    private(set) var acceptAfterNs: UInt64 = 0

    private var publishing = false
    private var publishStartNs: UInt64 = 0
    private var publishDeadlineNs: UInt64 = 0
    private var sent = 0
    private var nextChannel = 0
    private let channelPrefix: [UInt8]

    init(options: Options, control: Control, subscriberIndices: [Int], publisherCount: Int, totalPublishers: Int, connectLimit: Int, serverAddress: in_addr) {
        self.options = options
        self.control = control
        self.subscriberIndices = subscriberIndices
        self.publisherCount = publisherCount
        let share = totalPublishers > 0 ? Double(publisherCount) / Double(totalPublishers) : 0
        rate = options.rate * share
        countLimit = options.count > 0 ? Int((Double(options.count) * share).rounded()) : 0
        self.connectLimit = connectLimit
        self.serverAddress = serverAddress
        publishedPerChannel = [Int](repeating: 0, count: publisherCount > 0 ? options.channels : 0)
        channelPrefix = Array(options.channel.utf8)
        nextChannel = 0
    }

    deinit { scratch.deallocate() }

    /// Runs the loop on the calling thread until the main thread stops it.
    func run() {
        do {
            loop = try EventLoop(handle: handle)
        } catch {
            noteError("\(error)")
            return
        }
        loop.onStopRequested = { [unowned self] in
            for subscriber in self.subscribers { subscriber.close() }
            for publisher in self.publishers { publisher.close() }
            self.loop.stop()
        }
        for _ in 0..<publisherCount {
            let publisher = PublisherConnection(worker: self)
            publishers.append(publisher)
            publisher.connect()
        }
        tick()
        loop.run()
        publishTotals()
    }

    // MARK: The 1 ms tick: phases, connects, pacing, totals

    private func tick() {
        let phase = control.current
        acceptAfterNs = control.publishStartNs.load(ordering: .acquiring)
        if phase == .connect || phase == .publish { startConnects() }
        if phase == .publish && !publishing && publishStartNs == 0 { startPublishing() }
        if publishing {
            let now = Nanos.now()
            if now >= publishDeadlineNs || (countLimit > 0 && sent >= countLimit) || phase.rawValue > Phase.publish.rawValue {
                publishing = false
            } else if rate > 0 {
                for publisher in publishers { pump(publisher) }
            }
        }
        publishTotals()
        loop.schedule(afterMs: 1) { [unowned self] in self.tick() }
    }

    private func publishTotals() {
        totals.subscribed.store(subscribedCount, ordering: .relaxed)
        totals.failed.store(failedCount, ordering: .relaxed)
        totals.received.store(received, ordering: .relaxed)
        totals.published.store(published, ordering: .relaxed)
        totals.lastDeliveryNs.store(lastDeliveryNs, ordering: .relaxed)
        let done = publishStartNs != 0 && !publishing && publishers.allSatisfy { $0.inFlightCount == 0 }
        totals.publishersDone.store(done || publisherCount == 0, ordering: .releasing)
    }

    private func startConnects() {
        while connectsInProgress < connectLimit && nextSubscriber < subscriberIndices.count {
            let index = subscriberIndices[nextSubscriber]
            nextSubscriber += 1
            let subscriber = SubscriberConnection(worker: self, index: index)
            subscribers.append(subscriber)
            if subscriber.start(source: Connector.source(index: index, count: options.sourceIPs)) {
                connectsInProgress += 1
            } else {
                failedCount += 1
            }
        }
    }

    // MARK: Subscribers

    func subscriberConfirmed(_ subscriber: SubscriberConnection) {
        subscribedCount += 1
        confirmedIndices.append(subscriber.index)
        connectsInProgress -= 1
        startConnects()
    }

    func subscriberClosed(_ subscriber: SubscriberConnection, wasLive: Bool) {
        if wasLive {
            if control.current != .stop { disconnected += 1 }
        } else {
            failedCount += 1
            connectsInProgress -= 1
            if control.current != .stop { startConnects() }
        }
    }

    @inline(__always)
    func delivered(latencyNs: UInt64, now: UInt64) {
        received += 1
        lastDeliveryNs = now
        _ = latency.record(min(latencyNs / 1000, 120_000_000))
    }

    func deliveredWithoutTime() {
        received += 1
        untimed += 1
    }

    // MARK: Publishers

    private func startPublishing() {
        publishStartNs = control.publishStartNs.load(ordering: .acquiring)
        publishDeadlineNs = publishStartNs + UInt64(options.duration * 1e9)
        publishing = publisherCount > 0
        for publisher in publishers { pump(publisher) }
    }

    func publisherUp() { totals.publishersUp.add(1, ordering: .relaxed) }

    /// Sends on `publisher` what the pace (or flat out, the pipeline) allows now.
    func pump(_ publisher: PublisherConnection) {
        guard publishing, publisher.isReady else { return }
        let now = Nanos.now()
        while publisher.inFlightCount < options.pipeline && publishing {
            if countLimit > 0 && sent >= countLimit { return }
            if rate > 0 {
                let due = Int(Double(now - publishStartNs) / 1e9 * rate) + 1
                if sent >= due { return }
            }
            sent += 1
            let channel = nextChannel
            nextChannel = nextChannel + 1 == options.channels ? 0 : nextChannel + 1
            publisher.publish(channel: channel, now: now)
        }
    }

    func answered(status: Int, sentAt: UInt64, channel: Int, now: UInt64) {
        lastAnswerNs = now
        if status >= 200 && status < 300 {
            published += 1
            publishedPerChannel[channel] += 1
        } else {
            publishErrors += 1
            noteError("publish answered with status \(status)")
        }
        _ = publishLatency.record(min((now > sentAt ? now - sentAt : 0) / 1000, 120_000_000))
    }

    func publishFailed(count: Int) {
        publishErrors += count
    }

    /// Appends the name of channel index `channel` to a request.
    func appendChannel(_ channel: Int, into bytes: inout [UInt8]) {
        bytes.append(contentsOf: channelPrefix)
        guard options.distinct else { return }
        bytes.append(UInt8(ascii: "-"))
        bytes.append(contentsOf: String(channel).utf8)
    }

    func noteError(_ message: String) {
        if errors.count < 20 || errors[message] != nil { errors[message, default: 0] += 1 }
    }
}
