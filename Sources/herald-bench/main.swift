// herald-bench: a load generator for Herald and its peers (Webdis, Nchan). N WebSocket (or
// HTTP streaming) subscribers, M keep-alive HTTP publishers at a fixed rate or flat out, payloads
// carrying their send time; reports throughput, losses, latency percentiles and the gateway's
// CPU and memory. See BENCHMARKS.md.
import Glibc

let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
let report = BenchRun(options: options).run()
if options.json {
    writeStderr(report.table + "\n")
    print(report.jsonLine)
} else {
    print(report.table)
}
