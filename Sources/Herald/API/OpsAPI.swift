// Operations endpoints: liveness, readiness (every Redis link up), Prometheus metrics.

enum OpsAPI {
    static func health(_ responder: Responder) {
        responder.respond(.json(200, #"{"status":"ok"}"#))
    }

    static func ready(_ responder: Responder) {
        let process = responder.worker.process
        if process.isReady {
            responder.respond(.json(200, #"{"status":"ready"}"#))
            return
        }
        let down = process.loops.enumerated().flatMap { index, loop in
            (loop.commandLinkUp.value == 1 ? [] : ["loop \(index) command link"]) +
            (loop.subscriberLinkUp.value == 1 ? [] : ["loop \(index) subscriber link"])
        }
        var json = JSONWriter()
        json.object {
            $0.field("status", "not_ready")
            $0.field("down", strings: down)
        }
        responder.respond(.json(503, json.string))
    }

    static func metrics(_ responder: Responder) {
        let p = responder.worker.process
        var text = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Int)]) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { text += "\(name)\(labels) \(value)\n" }
        }
        metric("herald_connections", "gauge", "Open client connections by kind.", [
            ("{kind=\"http\"}", p.total { $0.httpConnections.value }),
            ("{kind=\"websocket\"}", p.total { $0.webSocketConnections.value }),
            ("{kind=\"sse\"}", p.total { $0.eventStreams.value }),
        ])
        metric("herald_subscriptions", "gauge", "Distinct Redis subscriptions held, summed over loops.", [
            ("{kind=\"channel\"}", p.total { $0.channels.value }),
            ("{kind=\"pattern\"}", p.total { $0.patterns.value }),
            ("{kind=\"shard\"}", p.total { $0.shards.value }),
        ])
        metric("herald_http_requests_total", "counter", "HTTP requests parsed.", [("", p.total { $0.requests.value })])
        metric("herald_published_total", "counter", "Messages published to Redis.", [("", p.total { $0.published.value })])
        metric("herald_publish_errors_total", "counter", "Publishes that failed.", [("", p.total { $0.publishErrors.value })])
        metric("herald_messages_received_total", "counter", "Pub/sub messages received from Redis.", [("", p.total { $0.received.value })])
        metric("herald_messages_delivered_total", "counter", "Messages queued to subscribers.", [("", p.total { $0.delivered.value })])
        metric("herald_messages_dropped_total", "counter", "Deliveries dropped for slow subscribers.", [("", p.total { $0.dropped.value })])
        metric("herald_redis_reconnects_total", "counter", "Reconnections to Redis after a failure.", [("", p.total { $0.redisReconnects.value })])
        metric("herald_ready", "gauge", "1 when every Redis link is up.", [("", p.isReady ? 1 : 0)])
        responder.respond(HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")], body: Array(text.utf8)))
    }
}
