// What /proc says about the gateway (and Redis): CPU seconds (utime + stime, proc(5)) and
// resident memory (VmRSS). Summed over several processes for nginx's workers.
import Glibc

enum ProcStats {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime of `pids`, seconds; nil when a process is gone.
    static func cpuSeconds(_ pids: [Int32]) -> Double? {
        var total = 0.0
        for pid in pids {
            guard let text = read("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
            // Fields after "comm)": state is field 3, utime 14, stime 15 (1-based).
            let fields = text[text.index(after: close)...].split(separator: " ")
            guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
            total += (utime + stime) / ticksPerSecond
        }
        return total
    }

    /// VmRSS of `pids` summed, KiB; nil when a process is gone.
    static func rssKiB(_ pids: [Int32]) -> Int? {
        var total = 0
        for pid in pids {
            guard let text = read("/proc/\(pid)/status"),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kib = Int(line.split(separator: " ").dropFirst().first ?? "")
            else { return nil }
            total += kib
        }
        return total
    }

    /// This process's own CPU seconds (user + system), all threads.
    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }

    private static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 8192)
        let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }
}
