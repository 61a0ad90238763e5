// herald-bench's command line, parsed once into one value and validated at start: a bad flag
// stops the run with a message naming it and exit code 2.
import Glibc

/// Writes `text` to standard error (fd 2, unbuffered: it is read next to stdout's JSON line).
func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// The gateway protocol the bench speaks.
enum TargetKind: String {
    /// Herald: `POST /publish/{ch}`, RFC 6455 WebSocket `/subscribe?channel=ch`.
    case herald
    /// Webdis: `GET /PUBLISH/ch/msg`, HTTP streaming `GET /SUBSCRIBE/ch` (chunked JSON).
    case webdis
    /// Nchan: `POST /pub?chan=ch`, RFC 6455 WebSocket `/sub?chan=ch` (bare payload frames).
    case nchan
}

/// Everything one bench process is asked to do.
struct Options {
    var target = TargetKind.herald
    var host = "127.0.0.1"
    var port = 8080
    /// WebSocket (or streaming) subscribers this process opens.
    var subscribers = 0
    /// Channel name, or the prefix of `prefix-i` channels with `distinct`.
    var channel = "bench"
    /// Subscriber i listens to `channel-(offset+i)` instead of one shared channel.
    var distinct = false
    /// Global index of this process's first subscriber, when several processes share a run.
    var offset = 0
    /// Channels the publishers spread over (`channel-0` ... `channel-(n-1)` with `distinct`).
    var channels = 0
    /// Keep-alive HTTP publisher connections.
    var publishers = 0
    /// Total publishes per second over all publishers; 0 publishes flat out.
    var rate = 0.0
    /// Requests in flight per publisher connection.
    var pipeline = 1
    /// Seconds of publishing.
    var duration = 5.0
    /// Stop after this many publishes in all (0: no limit).
    var count = 0
    /// Payload bytes: the send time in monotonic nanoseconds as text, padded with `x`.
    var size = 32
    /// Herald delivery format: `json` envelopes (the default) or `raw` payloads.
    var format = "json"
    /// Payload body after the send time: `x` padding, or JSON text (a realistic ratio for
    /// compression).
    var payload = "x"
    /// Subscribers offer permessage-deflate (Herald) and inflate what comes compressed.
    var compression = false
    /// Event-loop threads in this process.
    var threads = 1
    /// Source addresses 127.0.0.2... to spread subscribers over; -1 picks (16 from 1,000 up).
    var sourceIPs = -1
    /// TCP connects in progress at once (all threads together).
    var connectConcurrency = 256
    /// Seconds allowed for every subscriber to be confirmed.
    var connectTimeout = 60.0
    /// Seconds to wait after the last confirmation before publishing; -1 picks (1 s for Nchan,
    /// which confirms nothing, else 0).
    var settle = -1.0
    /// Seconds to hold the subscribers idle before publishing (RSS per idle connection).
    var hold = 0.0
    /// Most seconds to wait for deliveries after the last publish.
    var drain = 10.0
    /// Gateway process ids whose CPU time and RSS are summed (nginx: its workers).
    var pids: [Int32] = []
    /// Redis's process id, for its CPU time.
    var redisPid: Int32?
    /// Redis `host:port`, to read `INFO clients` before and after subscribing.
    var redisAddress: (host: String, port: Int)?
    /// Written once every subscriber is confirmed (and the hold is over).
    var readyFile: String?
    /// Subscriber-only process of a multi-process run: after `readyFile`, keep receiving until
    /// SIGUSR1, SIGINT or SIGTERM, then report.
    var waitSignal = false
    /// Print one JSON line on stdout (the table goes to stderr).
    var json = false
    /// Include the latency histogram's recorded values in the JSON.
    var histogram = false
    var label = ""

    static let usage = """
        usage: herald-bench [options]
          --target herald|webdis|nchan   gateway protocol (herald)
          --host H --port P              gateway address (127.0.0.1:8080)
          --subscribers N                subscribers to open (0)
          --channel NAME                 channel, or prefix of NAME-i with --distinct (bench)
          --distinct                     subscriber i listens to NAME-(offset+i)
          --offset K                     global index of the first subscriber (0)
          --channels C                   channels publishes spread over (1, or all with --distinct)
          --publishers M                 keep-alive HTTP publishers (0)
          --rate R                       total publishes/s; 0 = flat out (0)
          --pipeline D                   requests in flight per publisher (1)
          --duration S                   seconds of publishing (5)
          --count K                      stop after K publishes (no limit)
          --size B                       payload bytes, >= 20 (32)
          --format json|raw              Herald delivery format (json)
          --payload x|json               payload after the send time: x padding or JSON text (x)
          --compression                  subscribers offer permessage-deflate (Herald)
          --threads T                    event-loop threads (1)
          --source-ips K                 spread subscribers over 127.0.0.2.. (auto)
          --connect-concurrency C        connects in progress at once (256)
          --connect-timeout S            seconds to get every subscriber confirmed (60)
          --settle S                     seconds between the last confirmation and publishing (auto)
          --hold S                       seconds to hold subscribers idle before publishing (0)
          --drain S                      most seconds to wait for deliveries after publishing (10)
          --pid P[,P..]                  gateway processes: CPU seconds and RSS from /proc
          --redis-pid P                  Redis process: CPU seconds
          --redis HOST:PORT              Redis: INFO clients before/after subscribing
          --ready-file PATH              written once every subscriber is confirmed
          --wait-signal                  after --ready-file, receive until SIGUSR1/SIGINT/SIGTERM
          --json                         one JSON line on stdout, the table on stderr
          --histogram                    add the latency histogram's values to the JSON
          --label TEXT                   name of this run in the output
        """

    /// Parses `arguments` (without the program name); exits 2 with a message on a bad flag.
    static func parse(_ arguments: [String]) -> Options {
        var options = Options()
        var rest = arguments[...]
        func fail(_ message: String) -> Never {
            writeStderr("herald-bench: \(message)\n\(usage)\n")
            exit(2)
        }
        while let argument = rest.popFirst() {
            var flag = argument
            var inline: String?
            if let eq = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                flag = String(argument[..<eq])
                inline = String(argument[argument.index(after: eq)...])
            }
            func value() -> String {
                if let inline { return inline }
                guard let next = rest.popFirst() else { fail("\(flag) needs a value") }
                return next
            }
            func int(min: Int = 0) -> Int {
                let text = value()
                guard let n = Int(text), n >= min else { fail("\(flag) must be an integer >= \(min), not '\(text)'") }
                return n
            }
            func seconds() -> Double {
                let text = value()
                guard let n = Double(text), n >= 0 else { fail("\(flag) must be a number >= 0, not '\(text)'") }
                return n
            }
            switch flag {
            case "--target":
                let text = value()
                guard let kind = TargetKind(rawValue: text) else { fail("--target must be herald, webdis or nchan, not '\(text)'") }
                options.target = kind
            case "--host": options.host = value()
            case "--port": options.port = int(min: 1)
            case "--subscribers": options.subscribers = int()
            case "--channel": options.channel = value()
            case "--distinct": options.distinct = true
            case "--offset": options.offset = int()
            case "--channels": options.channels = int(min: 1)
            case "--publishers": options.publishers = int()
            case "--rate": options.rate = seconds()
            case "--pipeline": options.pipeline = int(min: 1)
            case "--duration": options.duration = seconds()
            case "--count": options.count = int()
            case "--size": options.size = int(min: 20)
            case "--format":
                let text = value()
                guard text == "json" || text == "raw" else { fail("--format must be json or raw, not '\(text)'") }
                options.format = text
            case "--payload":
                let text = value()
                guard text == "x" || text == "json" else { fail("--payload must be x or json, not '\(text)'") }
                options.payload = text
            case "--compression": options.compression = true
            case "--threads": options.threads = int(min: 1)
            case "--source-ips": options.sourceIPs = int()
            case "--connect-concurrency": options.connectConcurrency = int(min: 1)
            case "--connect-timeout": options.connectTimeout = seconds()
            case "--settle": options.settle = seconds()
            case "--hold": options.hold = seconds()
            case "--drain": options.drain = seconds()
            case "--pid":
                let text = value()
                let pids = text.split(separator: ",").compactMap { Int32($0) }
                guard !pids.isEmpty else { fail("--pid must be process ids separated by commas, not '\(text)'") }
                options.pids = pids
            case "--redis-pid":
                let text = value()
                guard let pid = Int32(text) else { fail("--redis-pid must be a process id, not '\(text)'") }
                options.redisPid = pid
            case "--redis":
                let text = value()
                guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
                    fail("--redis must be HOST:PORT, not '\(text)'")
                }
                options.redisAddress = (String(text[..<colon]), port)
            case "--ready-file": options.readyFile = value()
            case "--wait-signal": options.waitSignal = true
            case "--json": options.json = true
            case "--histogram": options.histogram = true
            case "--label": options.label = value()
            case "--help", "-h":
                print(usage)
                exit(0)
            default: fail("unknown flag \(argument)")
            }
        }
        if options.format == "raw" && options.target != .herald { fail("--format raw is for --target herald") }
        if options.channels == 0 { options.channels = options.distinct ? max(1, options.offset + options.subscribers) : 1 }
        if options.sourceIPs < 0 { options.sourceIPs = options.subscribers >= 1000 ? 16 : 0 }
        if options.settle < 0 { options.settle = options.target == .nchan ? 1 : 0 }
        return options
    }

    /// The channel subscriber `globalIndex` listens to, and the one publish `index` goes to.
    func channelName(_ index: Int) -> String { distinct ? "\(channel)-\(index)" : channel }
}
