// Operations endpoints: liveness, readiness (every Redis link up), Prometheus metrics.

/// Herald's version, reported by `/metrics` (`herald_build_info`).
public let heraldVersion = "0.4.0"

enum OpsAPI {
    static func health(_ responder: Responder) {
        responder.respond(.json(200, #"{"status":"ok"}"#))
    }

    static func ready(_ responder: Responder, _ process: ProcessStats) {
        if process.isReady {
            responder.respond(.json(200, #"{"status":"ready"}"#))
            return
        }
        let down = process.loops.enumerated().flatMap { index, loop in
            (loop.commandLinkUp.value == 1 ? [] : ["loop \(index) command link"]) + (loop.subscriberLinkUp.value == 1 ? [] : ["loop \(index) subscriber link"])
        }
        // Why each link is down, in the order of `down`: what an operator checks first.
        let reasons = process.loops.enumerated().flatMap { index, loop in
            (loop.commandLinkUp.value == 1 ? [] : ["loop \(index) command link: " + loop.commandLinkError.withLock { $0 }])
                + (loop.subscriberLinkUp.value == 1 ? [] : ["loop \(index) subscriber link: " + loop.subscriberLinkError.withLock { $0 }])
        }
        var json = JSONWriter()
        json.object {
            $0.field("status", "not_ready")
            $0.field("down", strings: down)
            $0.field("reasons", strings: reasons)
            // Under Sentinel, why: e.g. "resolving master via sentinel: no sentinel answered (...)".
            if let reason = process.loops.map(\.redisStatusText).first(where: { !$0.isEmpty }) { $0.field("reason", reason) }
        }
        responder.respond(.json(503, json.string))
    }

    /// Prometheus text exposition format 0.0.4.
    static func metrics(_ responder: Responder, _ p: ProcessStats) {
        var text = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { text += "\(name)\(labels) \(value)\n" }
        }
        func histogram(_ name: String, _ help: String, _ snapshots: [(buckets: [Int], sumMicros: Int)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            var cumulative = 0
            for (i, bound) in LatencyHistogram.bounds.enumerated() {
                cumulative += snapshots.reduce(0) { $0 + $1.buckets[i] }
                text += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
            }
            let count = snapshots.reduce(0) { $0 + $1.buckets.reduce(0, +) }
            text += "\(name)_bucket{le=\"+Inf\"} \(count)\n"
            text += "\(name)_sum \(Double(snapshots.reduce(0) { $0 + $1.sumMicros }) / 1_000_000)\n"
            text += "\(name)_count \(count)\n"
        }
        metric("herald_build_info", "gauge", "Herald's version.", [("{version=\"\(heraldVersion)\"}", 1)])
        metric(
            "herald_connections", "gauge", "Open client connections by kind.",
            [
                ("{kind=\"http\"}", p.total { $0.httpConnections.value }),
                ("{kind=\"websocket\"}", p.total { $0.webSocketConnections.value }),
                ("{kind=\"sse\"}", p.total { $0.eventStreams.value }),
            ])
        metric(
            "herald_subscriptions", "gauge", "Distinct Redis subscriptions held, summed over loops.",
            [
                ("{kind=\"channel\"}", p.total { $0.channels.value }),
                ("{kind=\"pattern\"}", p.total { $0.patterns.value }),
                ("{kind=\"shard\"}", p.total { $0.shards.value }),
            ])
        metric(
            "herald_watch_keys", "gauge", "Distinct watched keys and patterns held (one keyspace subscription each per loop), summed over loops.",
            [
                ("{kind=\"key\"}", p.total { $0.watchKeys.value }),
                ("{kind=\"pattern\"}", p.total { $0.watchPatterns.value }),
            ])
        metric(
            "herald_watch_notifications_total", "counter", "Keyspace notifications received for watched keys.",
            [("", p.total { $0.watchNotifications.value })])
        metric(
            "herald_watch_reads_total", "counter", "Reads of watched values (snapshots, and changes after coalescing).",
            [("", p.total { $0.watchReads.value })])
        metric("herald_http_requests_total", "counter", "HTTP requests parsed.", [("", p.total { $0.requests.value })])
        metric("herald_published_total", "counter", "Messages published to Redis.", [("", p.total { $0.published.value })])
        metric("herald_publish_errors_total", "counter", "Publishes that failed.", [("", p.total { $0.publishErrors.value })])
        metric(
            "herald_messages_received_total", "counter", "Pub/sub messages received from Redis, by kind.",
            [
                ("{kind=\"message\"}", p.total { $0.receivedChannel.value }),
                ("{kind=\"pmessage\"}", p.total { $0.receivedPattern.value }),
                ("{kind=\"smessage\"}", p.total { $0.receivedShard.value }),
            ])
        metric("herald_messages_delivered_total", "counter", "Messages and stream entries queued to clients.", [("", p.total { $0.delivered.value })])
        metric("herald_messages_dropped_total", "counter", "Deliveries dropped for slow subscribers.", [("", p.total { $0.dropped.value })])
        metric(
            "herald_ws_compressed_connections", "gauge", "Open WebSockets that agreed to permessage-deflate.",
            [("", p.total { $0.compressedConnections.value })])
        metric(
            "herald_ws_compressions_total", "counter", "Messages compressed for permessage-deflate: once per delivery, however many subscribers get it.",
            [("", p.total { $0.compressions.value })])
        metric(
            "herald_ws_compressed_bytes_total", "counter", "Bytes of compressed frames queued to WebSocket clients.",
            [("", p.total { $0.compressedBytes.value })])
        metric(
            "herald_ws_uncompressed_bytes_total", "counter", "Bytes the same frames would have taken uncompressed.",
            [("", p.total { $0.uncompressedBytes.value })])
        metric("herald_redis_reconnects_total", "counter", "Reconnections to Redis after a failure.", [("", p.total { $0.redisReconnects.value })])
        metric("herald_redis_errors_total", "counter", "Error replies from Redis.", [("", p.total { $0.redisErrors.value })])
        metric(
            "herald_queue_lease_errors_total", "counter", "Queue lease scripts (renew, reap, put back) Redis refused; each is tried again.",
            [("", p.total { $0.queueLeaseErrors.value })])
        metric("herald_ready", "gauge", "1 when every Redis link is up.", [("", p.isReady ? 1 : 0)])

        metric("herald_hook_calls_total", "counter", "Calls to the authorization hook (--hook-url).", [("", p.total { $0.hookCalls.value })])
        metric("herald_hook_refusals_total", "counter", "Hook calls answered 401 or 403.", [("", p.total { $0.hookRefusals.value })])
        metric(
            "herald_hook_failures_total", "counter", "Hook calls without a usable answer (failed, timed out, another status): refused as unavailable.",
            [("", p.total { $0.hookFailures.value })])
        metric("herald_presence_members", "gauge", "Presence members held by this Herald's connections.", [("", p.total { $0.presenceMembers.value })])
        metric(
            "herald_presence_channels", "gauge", "Channels with presence members, counted per loop and summed over loops.",
            [("", p.total { $0.presenceChannels.value })])
        metric(
            "herald_presence_errors_total", "counter", "Presence scripts Redis refused; the next refresh repairs what they left.",
            [("", p.total { $0.presenceErrors.value })])
        histogram("herald_publish_duration_seconds", "Time from a publish request to Redis's reply.", p.loops.map(\.publishLatency.snapshot))
        histogram("herald_hook_duration_seconds", "Time from a hook call to the backend's answer (or its failure).", p.loops.map(\.hookLatency.snapshot))
        responder.respond(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Array(text.utf8)))
    }
}
