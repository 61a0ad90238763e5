// The main thread's side of a run: starts the loops, walks them through the phases (connect,
// settle and hold, publish, drain, stop), samples the gateway from /proc at each step, and
// merges the loops' figures into one Report once they have ended.
import Dispatch
import Foundation
import Glibc
import Histogram
import Synchronization

/// Set by SIGUSR1, SIGINT or SIGTERM: finish (a `--wait-signal` process reports then).
let stopSignalled = Atomic<Bool>(false)

struct BenchRun {
    let options: Options

    func run() -> Report {
        signal(SIGPIPE, SIG_IGN)
        for sig in [SIGUSR1, SIGINT, SIGTERM] {
            signal(sig) { _ in stopSignalled.store(true, ordering: .relaxed) }
        }
        guard let address = Connector.address(options.host) else {
            writeStderr("herald-bench: --host must be a numeric IPv4 address, not '\(options.host)'\n")
            exit(2)
        }
        let control = Control()
        let threads = max(1, options.threads)
        let workers = (0..<threads).map { w in
            BenchWorker(
                options: options, control: control,
                subscriberIndices: Array(stride(from: options.offset + w, to: options.offset + options.subscribers, by: threads)),
                publisherCount: options.publishers / threads + (w < options.publishers % threads ? 1 : 0),
                totalPublishers: options.publishers,
                connectLimit: max(1, options.connectConcurrency / threads),
                serverAddress: address)
        }
        let redisClients = { options.redisAddress.flatMap { RedisInfo.connectedClients(host: $0.host, port: $0.port) } }
        let rss = { options.pids.isEmpty ? nil : ProcStats.rssKiB(options.pids) }
        var report = Report(
            label: options.label, target: options.target.rawValue, subscribersRequested: options.subscribers,
            subscribed: 0, connectFailed: 0, disconnected: 0, connectSeconds: 0, publishers: options.publishers,
            published: 0, publishErrors: 0, received: 0, untimed: 0, stale: 0, droppedNotices: 0, otherMessages: 0,
            benchCPUSeconds: 0, errors: [:])
        report.rssBeforeKib = rss()
        report.redisClientsBefore = redisClients()

        let finished = DispatchSemaphore(value: 0)
        for (w, worker) in workers.enumerated() {
            let thread = Thread {
                worker.run()
                finished.signal()
            }
            thread.name = "bench-loop-\(w)"
            thread.start()
        }
        func sum(_ value: (LoopTotals) -> Int) -> Int { workers.reduce(0) { $0 + value($1.totals) } }
        func waitUntil(timeout: Double, _ done: () -> Bool) {
            let deadline = Nanos.now() + UInt64(timeout * 1e9)
            while !done() && Nanos.now() < deadline && !stopSignalled.load(ordering: .relaxed) { Nanos.sleep(seconds: 0.005) }
        }

        // Connect: every subscriber confirmed (or failed), every publisher connected.
        let connectStart = Nanos.now()
        var lastConfirmed = connectStart
        var lastCount = 0
        waitUntil(timeout: options.connectTimeout) {
            let resolved = sum { $0.subscribed.load(ordering: .relaxed) + $0.failed.load(ordering: .relaxed) }
            if resolved != lastCount { lastCount = resolved; lastConfirmed = Nanos.now() }
            return resolved >= options.subscribers && sum { $0.publishersUp.load(ordering: .relaxed) } >= options.publishers
        }
        report.connectSeconds = Nanos.seconds(connectStart, lastConfirmed)
        Nanos.sleep(seconds: options.settle)
        report.rssSubscribedKib = rss()
        report.redisClientsSubscribed = redisClients()
        if options.hold > 0 {
            waitUntil(timeout: options.hold) { false }
            report.rssHeldKib = rss()
        }

        if options.waitSignal {
            control.publishStartNs.store(Nanos.now(), ordering: .releasing)
            writeReadyFile(subscribed: sum { $0.subscribed.load(ordering: .relaxed) })
            while !stopSignalled.load(ordering: .relaxed) { Nanos.sleep(seconds: 0.01) }
        } else {
            writeReadyFile(subscribed: sum { $0.subscribed.load(ordering: .relaxed) })
            if options.publishers > 0 {
                let cpu0 = ProcStats.cpuSeconds(options.pids)
                let redisCPU0 = options.redisPid.flatMap { ProcStats.cpuSeconds([$0]) }
                let t0 = Nanos.now()
                control.publishStartNs.store(t0, ordering: .releasing)
                control.move(to: .publish)
                waitUntil(timeout: options.duration + 60) { workers.allSatisfy { $0.totals.publishersDone.load(ordering: .acquiring) } }
                let publishEnd = Nanos.now()
                control.move(to: .drain)
                // Drain: until every due delivery arrived, nothing arrived for 2 s, or --drain.
                let published = sum { $0.published.load(ordering: .relaxed) }
                let subscribed = sum { $0.subscribed.load(ordering: .relaxed) }
                let due =
                    options.subscribers == 0
                    ? 0
                    : options.distinct ? published * subscribed / max(1, options.channels) : published * subscribed
                var lastReceived = -1
                var lastProgress = publishEnd
                waitUntil(timeout: options.drain) {
                    let received = sum { $0.received.load(ordering: .relaxed) }
                    if received != lastReceived { lastReceived = received; lastProgress = Nanos.now() }
                    return received >= due || Nanos.now() - lastProgress > 2_000_000_000
                }
                let end = Nanos.now()
                if let cpu0, let cpu1 = ProcStats.cpuSeconds(options.pids) { report.gatewayCPUSeconds = cpu1 - cpu0 }
                if let redisCPU0, let pid = options.redisPid, let redisCPU1 = ProcStats.cpuSeconds([pid]) {
                    report.redisCPUSeconds = redisCPU1 - redisCPU0
                }
                report.publishSeconds = Nanos.seconds(t0, min(publishEnd, end))
                let lastDelivery = workers.map { $0.totals.lastDeliveryNs.load(ordering: .relaxed) }.max() ?? 0
                if lastDelivery > t0 { report.deliverySeconds = Nanos.seconds(t0, lastDelivery) }
            }
        }
        report.rssEndKib = rss()
        control.move(to: .stop)
        for worker in workers { worker.handle.requestStop() }
        for _ in workers { finished.wait() }
        merge(workers, into: &report)
        return report
    }

    private func writeReadyFile(subscribed: Int) {
        guard let path = options.readyFile else { return }
        try? "\(subscribed)\n".write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Adds up what the loops measured (they have all ended).
    private func merge(_ workers: [BenchWorker], into report: inout Report) {
        var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var publishLatency = latency
        var publishedPerChannel = [Int](repeating: 0, count: options.channels)
        var subscribersPerChannel = [Int](repeating: 0, count: options.channels)
        for worker in workers {
            latency.add(worker.latency)
            publishLatency.add(worker.publishLatency)
            report.subscribed += worker.subscribedCount
            report.connectFailed += worker.failedCount
            report.disconnected += worker.disconnected
            report.published += worker.published
            report.publishErrors += worker.publishErrors
            report.received += worker.received
            report.untimed += worker.untimed
            report.stale += worker.stale
            report.droppedNotices += worker.droppedNotices
            report.otherMessages += worker.otherMessages
            report.wireBytes = (report.wireBytes ?? 0) + worker.wireBytes
            for (channel, count) in worker.publishedPerChannel.enumerated() { publishedPerChannel[channel] += count }
            for index in worker.confirmedIndices {
                let channel = options.distinct ? index : 0
                if channel < subscribersPerChannel.count { subscribersPerChannel[channel] += 1 }
            }
            report.errors.merge(worker.errors, uniquingKeysWith: +)
        }
        report.latencyMs = Report.percentiles(latency)
        report.publishLatencyMs = Report.percentiles(publishLatency)
        if options.histogram && latency.totalCount > 0 { report.histogram = Report.recorded(latency) }
        report.benchCPUSeconds = ProcStats.ownCPUSeconds()
        if let seconds = report.publishSeconds, seconds > 0 { report.publishesPerSecond = Double(report.published) / seconds }
        if let seconds = report.deliverySeconds, seconds > 0 { report.deliveriesPerSecond = Double(report.received) / seconds }
        if let bytes = report.wireBytes, report.received > 0 { report.wireBytesPerDelivery = Double(bytes) / Double(report.received) }
        if options.publishers > 0 && options.subscribers > 0 {
            let expected = zip(publishedPerChannel, subscribersPerChannel).reduce(0) { $0 + $1.0 * $1.1 }
            report.expected = expected
            report.lost = expected - (report.received - report.untimed)
        }
        if let cpu = report.gatewayCPUSeconds {
            let messages = options.subscribers > 0 ? report.received : report.published
            if messages > 0 { report.gatewayCPUMicrosPerMessage = cpu * 1e6 / Double(messages) }
        }
        if let before = report.rssBeforeKib, let after = report.rssHeldKib ?? report.rssSubscribedKib, report.subscribed > 0 {
            report.rssPerSubscriberKib = Double(after - before) / Double(report.subscribed)
        }
    }
}
