import Foundation
import QKDCore
import QKDLaunch
import QKDTopology
import QKDWire
import Testing

/// Paths and helpers for tests that run real qkd-node processes.
enum Harness {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A shipped topology's path. `line-3.yaml` is given as a light variant unless
    /// `composable`: the asymptotic bound on 256-kbit blocks instead of Lim et al.'s on 4-Mbit
    /// ones, because several test networks run at once on 2 cores and the faults, relays and
    /// restarts these tests exercise do not depend on the bound (the composable line-3 has a
    /// test of its own, `lineThreeLinksProduceSiftedKeyMatchingTheModel`).
    static func topology(_ name: String, composable: Bool = false) -> String {
        guard name == "line-3.yaml", !composable else { return "\(repository)/Topologies/\(name)" }
        return variant(of: name, label: "light", replacing: ["finite_key: lim2014": "finite_key: asymptotic",
                                                            "block_key_bits: 4194304": "block_key_bits: 262144"])
    }

    /// A copy of a shipped topology with some of its text replaced, written once per test
    /// process. Every key of `replacing` must occur in the file: a shipped topology that no
    /// longer says what a test assumed stops the test here instead of running the wrong network.
    static func variant(of name: String, label: String, replacing: [String: String]) -> String {
        let shipped = "\(repository)/Topologies/\(name)"
        guard var text = try? String(contentsOfFile: shipped, encoding: .utf8) else {
            fatalError("cannot read \(shipped)")
        }
        for (old, new) in replacing.sorted(by: { $0.key < $1.key }) {
            guard text.contains(old) else { fatalError("\(shipped) no longer contains '\(old)'") }
            text = text.replacingOccurrences(of: old, with: new)
        }
        let path = "\(variantDirectory)/\(label)-\(name)"
        if !FileManager.default.fileExists(atPath: path) { try? text.write(toFile: path, atomically: true, encoding: .utf8) }
        return path
    }

    /// Where this test process writes its variants: made on first use, removed when the process
    /// exits (and, for a process that was killed, by the next one that finds it).
    static let variantDirectory: String = {
        let prefix = "qkdnet-variants-", fm = FileManager.default
        for stale in (try? fm.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? [] where stale.hasPrefix(prefix) {
            if let pid = Int32(stale.dropFirst(prefix.count)), kill(pid, 0) != 0, errno == ESRCH {
                try? fm.removeItem(atPath: NSTemporaryDirectory() + stale)
            }
        }
        let dir = NSTemporaryDirectory() + prefix + "\(getpid())"
        try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Harness.variantDirectory) }
        return dir
    }()

    /// Where `swift build` put qkd-node: beside the test bundle, or QKDNET_BIN_DIR.
    static var binDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["QKDNET_BIN_DIR"] { return dir }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test binary may sit inside a bundle directory.
        while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("qkd-node").path), dir.path != "/" {
            dir.deleteLastPathComponent()
        }
        return dir.path
    }

    static func runDirectory(_ label: String) -> String {
        "/tmp/qkdnet-\(label)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Starts a network; on failure the error already carries the failing node's log.
    static func up(_ topologyFile: String, label: String, composable: Bool = false) throws -> Network {
        try Network.up(topologyPath: topology(topologyFile, composable: composable), runDir: runDirectory(label),
                       binDirectory: binDirectory, readyTimeoutSeconds: 60)
    }

    /// Starts a shipped topology with its quantum layer slowed down 10^4 times, so that a large
    /// network stays light in tests (relays then use the links' pre-shared keys).
    static func upSlowed(_ topologyFile: String, label: String) throws -> Network {
        try Network.up(topologyPath: topology(topologyFile), runDir: runDirectory(label), binDirectory: binDirectory,
                       readyTimeoutSeconds: 120, extraNodeArguments: ["--time-scale", "0.0001"])
    }

    /// Stops the network and removes its run directory.
    static func tearDown(_ network: Network) {
        let result = network.down()
        if !result.killed.isEmpty { print("nodes needing SIGKILL: \(result.killed)") }
        try? FileManager.default.removeItem(atPath: network.layout.root)
    }

    /// Runs a system command to its end: its exit status and its output and error, together.
    static func command(_ executable: String, _ arguments: [String], scratch: String) throws -> (status: Int32, output: String) {
        let out = "\(scratch)/command-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let pid = try Processes.spawn(executable: executable, arguments: arguments, outputPath: out)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return (status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }

    static func dumpLogs(_ network: Network) {
        for node in network.topology.nodes { print(network.diagnostics(node.id, lines: 15)) }
    }

    /// One node's own report.
    static func report(_ network: Network, _ node: String, timeoutMs: Int = 5000) -> NodeStatusReport? {
        network.query([NodeID(node)], request: ControlRequest.status,
                            timeoutMs: timeoutMs)[NodeID(node)]?.status
    }
}

