// One run's figures: merged from every loop, printed as a table for people and as one JSON
// line for scripts (the driver merges several processes' lines and plots from them).
import Foundation
import Histogram

/// Everything a run measured. Latencies are milliseconds; nil means not measured.
struct Report: Codable {
    var label: String
    var target: String
    var subscribersRequested: Int
    var subscribed: Int
    var connectFailed: Int
    /// Confirmed subscribers that the gateway closed before the end.
    var disconnected: Int
    /// Seconds from the first connect to the last confirmation.
    var connectSeconds: Double
    var publishers: Int
    var published: Int
    var publishErrors: Int
    var publishSeconds: Double?
    var publishesPerSecond: Double?
    /// Deliveries due (publishes × confirmed subscribers of their channel), when this process
    /// both published and subscribed.
    var expected: Int?
    var received: Int
    var lost: Int?
    /// Seconds from the first publish to the last delivery.
    var deliverySeconds: Double?
    var deliveriesPerSecond: Double?
    var untimed: Int
    var stale: Int
    var droppedNotices: Int
    var otherMessages: Int
    /// Bytes of data frames received, and per delivery received.
    var wireBytes: Int?
    var wireBytesPerDelivery: Double?
    var latencyMs: [String: Double]?
    var publishLatencyMs: [String: Double]?
    var gatewayCPUSeconds: Double?
    /// Gateway CPU microseconds per delivery received (or per publish without subscribers).
    var gatewayCPUMicrosPerMessage: Double?
    var redisCPUSeconds: Double?
    var benchCPUSeconds: Double
    var rssBeforeKib: Int?
    var rssSubscribedKib: Int?
    var rssHeldKib: Int?
    var rssEndKib: Int?
    /// (RSS after subscribing and holding − RSS before) / subscribers, KiB.
    var rssPerSubscriberKib: Double?
    var redisClientsBefore: Int?
    var redisClientsSubscribed: Int?
    var errors: [String: Int]
    /// Recorded latency histogram: [microseconds, count] pairs (with `--histogram`).
    var histogram: [[UInt64]]?

    static func percentiles(_ h: Histogram<UInt64>) -> [String: Double]? {
        guard h.totalCount > 0 else { return nil }
        var out: [String: Double] = [:]
        for (name, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)] {
            out[name] = Double(h.valueAtPercentile(p)) / 1000
        }
        out["max"] = Double(h.max) / 1000
        out["mean"] = (h.mean / 1000 * 1000).rounded() / 1000
        return out
    }

    static func recorded(_ h: Histogram<UInt64>) -> [[UInt64]] {
        h.recordedValues().map { [$0.value, UInt64($0.count)] }
    }

    var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// The human table.
    var table: String {
        func f(_ v: Double?, _ digits: Int = 1) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "-" }
        func i(_ v: Int?) -> String { v.map(String.init) ?? "-" }
        func lat(_ l: [String: Double]?) -> String {
            guard let l else { return "-" }
            return ["p50", "p90", "p99", "p99.9", "max"].map { "\($0) \(f(l[$0], 2))" }.joined(separator: "  ")
        }
        var rows: [(String, String)] = [
            ("run", "\(label.isEmpty ? "-" : label) (\(target))"),
            (
                "subscribers",
                "\(subscribed)/\(subscribersRequested) confirmed, \(connectFailed) failed, \(disconnected) disconnected, \(f(connectSeconds, 2)) s to connect"
            ),
        ]
        if publishers > 0 {
            rows.append(
                ("publishes", "\(published) ok, \(publishErrors) errors, \(f(publishesPerSecond)) /s over \(f(publishSeconds, 2)) s, \(publishers) connections")
            )
            rows.append(("publish latency ms", lat(publishLatencyMs)))
        }
        if subscribersRequested > 0 {
            rows.append(("deliveries", "\(received) received, expected \(i(expected)), lost \(i(lost)), \(f(deliveriesPerSecond)) /s"))
            if let wireBytesPerDelivery { rows.append(("wire bytes", "\(f(wireBytesPerDelivery)) per delivery (frame headers included)")) }
            if untimed + stale + droppedNotices + otherMessages > 0 {
                rows.append(("other", "untimed \(untimed), stale \(stale), dropped notices \(droppedNotices), other frames \(otherMessages)"))
            }
            rows.append(("latency ms", lat(latencyMs)))
        }
        rows.append(
            (
                "gateway CPU",
                "\(f(gatewayCPUSeconds, 2)) s, \(f(gatewayCPUMicrosPerMessage, 2)) µs per message; Redis \(f(redisCPUSeconds, 2)) s; bench \(f(benchCPUSeconds, 2)) s"
            ))
        rows.append(
            (
                "gateway RSS KiB",
                "before \(i(rssBeforeKib)), subscribed \(i(rssSubscribedKib)), held \(i(rssHeldKib)), end \(i(rssEndKib)); per subscriber \(f(rssPerSubscriberKib, 2))"
            ))
        if redisClientsBefore != nil {
            rows.append(("Redis clients", "before \(i(redisClientsBefore)), subscribed \(i(redisClientsSubscribed))"))
        }
        for (message, count) in errors.sorted(by: { $0.value > $1.value }) { rows.append(("error", "\(count) × \(message)")) }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
    }
}
