// A private redis-server for one test: started on a free loopback port, with no persistence,
// stopped (and restartable on the same port) on demand. Real Redis, never a mock.
import Foundation
import Glibc
import Herald

/// One `redis-server` child process. Confined to the test that owns it.
public final class RedisServer {
    public static let serverPath = "/usr/bin/redis-server"
    public static let cliPath = "/usr/bin/redis-cli"

    public let port: Int
    /// `--requirepass` value, or nil for an open server.
    public let password: String?
    /// Whether this is a one-node Redis Cluster that owns all 16384 slots.
    public let isClusterNode: Bool
    /// A cluster node's bus port. Redis's default, port + 10000, does not exist for the
    /// kernel's high ephemeral ports, so a node gets a free port of its own.
    private let clusterBusPort: Int?
    private var process: Process?

    /// Where a cluster node keeps its `nodes.conf`; removed on `stop()`.
    private var clusterConfigPath: String { NSTemporaryDirectory() + "herald-test-nodes-\(port).conf" }

    public enum Failure: Error, CustomStringConvertible {
        case didNotStart(port: Int, reason: String)
        case cliFailed(arguments: [String], status: Int32, output: String)

        public var description: String {
            switch self {
            case .didNotStart(let port, let reason): "redis-server on port \(port) did not start: \(reason)"
            case .cliFailed(let arguments, let status, let output): "redis-cli \(arguments) exited \(status): \(output)"
            }
        }
    }

    /// Starts a server on a free port (or on `port`, e.g. to restart one) and waits until it
    /// answers PING (and, for a cluster node, until the cluster state is ok).
    public init(port: Int? = nil, password: String? = nil, clusterNode: Bool = false) throws {
        Self.ignoreSIGPIPE()
        self.port = port ?? FreePort.find()
        self.password = password
        self.isClusterNode = clusterNode
        self.clusterBusPort = clusterNode ? FreePort.find(other: self.port) : nil
        try start()
    }

    deinit { stop() }

    public var isRunning: Bool { process?.isRunning ?? false }

    /// The endpoint Herald would use to reach this server.
    public func endpoint(database: Int = 0) -> RedisEndpoint {
        RedisEndpoint(host: "127.0.0.1", port: port, password: password, database: database)
    }

    /// Starts the server (again) on its port; waits up to `timeoutMs` for PONG.
    public func start(timeoutMs: Int64 = 10_000) throws {
        guard !isRunning else { return }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.serverPath)
        var arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if let password { arguments += ["--requirepass", password] }
        if isClusterNode, let clusterBusPort {
            arguments += [
                "--cluster-enabled", "yes", "--cluster-config-file", clusterConfigPath,
                "--cluster-port", String(clusterBusPort),
            ]
        }
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Clock.nowMs() + timeoutMs
        while Clock.nowMs() < deadline {
            guard process.isRunning else {
                self.process = nil
                if isClusterNode { try? FileManager.default.removeItem(atPath: clusterConfigPath) }
                throw Failure.didNotStart(port: port, reason: "exited with status \(process.terminationStatus)")
            }
            if (try? cli("PING")) == "PONG" {
                if isClusterNode { try claimAllSlots(until: deadline) }
                return
            }
            usleep(20_000)
        }
        stop()
        throw Failure.didNotStart(port: port, reason: "no PONG within \(timeoutMs) ms")
    }

    /// Terminates the server and waits for it to exit. Safe to call twice.
    public func stop() {
        guard let process else { return }
        self.process = nil
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if isClusterNode { try? FileManager.default.removeItem(atPath: clusterConfigPath) }
    }

    /// A fresh cluster node owns no slots; give it all of them and wait for `cluster_state:ok`.
    private func claimAllSlots(until deadline: Int64) throws {
        if (try? cli("CLUSTER", "INFO"))?.contains("cluster_slots_assigned:16384") != true {
            try cli("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        }
        while Clock.nowMs() < deadline {
            if (try? cli("CLUSTER", "INFO"))?.contains("cluster_state:ok") == true { return }
            usleep(20_000)
        }
        stop()
        throw Failure.didNotStart(port: port, reason: "cluster state never became ok")
    }

    /// Runs `redis-cli -p PORT [-a PASSWORD] arguments...` and returns its stdout, trimmed of
    /// the final newline. Throws when redis-cli exits non-zero.
    @discardableResult
    public func cli(_ arguments: String...) throws -> String {
        try cli(arguments)
    }

    @discardableResult
    public func cli(_ arguments: [String]) throws -> String {
        var full = ["-h", "127.0.0.1", "-p", String(port)]
        if let password { full += ["-a", password, "--no-auth-warning"] }
        full += arguments
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.cliPath)
        process.arguments = full
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var output = String(decoding: data, as: UTF8.self)
        while output.hasSuffix("\n") { output.removeLast() }
        guard process.terminationStatus == 0 else {
            throw Failure.cliFailed(arguments: arguments, status: process.terminationStatus, output: output)
        }
        return output
    }

    /// `PUBSUB NUMSUB channel` as a number (redis-cli prints the channel, then the count).
    public func subscriberCount(channel: String) throws -> Int {
        try lastInteger(cli("PUBSUB", "NUMSUB", channel))
    }

    /// `PUBSUB SHARDNUMSUB channel` as a number.
    public func shardSubscriberCount(channel: String) throws -> Int {
        try lastInteger(cli("PUBSUB", "SHARDNUMSUB", channel))
    }

    /// `PUBSUB NUMPAT`: patterns subscribed by all clients.
    public func patternCount() throws -> Int {
        try lastInteger(cli("PUBSUB", "NUMPAT"))
    }

    private func lastInteger(_ output: String) throws -> Int {
        guard let last = output.split(separator: "\n").last, let n = Int(last) else {
            throw Failure.cliFailed(arguments: [], status: 0, output: "not a count: \(output)")
        }
        return n
    }

    /// A write to a socket whose peer is gone (a stopped redis-server) must fail with EPIPE,
    /// not kill the test runner; Herald's `Server` does the same at start.
    private static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}
