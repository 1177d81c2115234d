import Foundation
import QKDCore
import QKDLaunch
import QKDWire

/// Issue 2's numbers: start-up time of real networks, idle memory per node, classical round
/// trip between neighbouring node processes over ipc://. Nodes run with `--quantum off`, so
/// these measure the spine alone; `QuantumBenchmarks` measures the loaded network.
enum SpineBenchmarks {
    static func run(_ report: inout BenchReport, topologies: String, binDirectory: String) throws {
        let backbone = "\(topologies)/beijing-shanghai.yaml"
        var upTimes: [Double] = []
        var lastNetwork: Network?
        for i in 0..<3 {
            let dir = "/tmp/qkdnet-bench-\(getpid())-\(i)"
            let start = Date()
            let network = try Network.up(topologyPath: backbone, runDir: dir, binDirectory: binDirectory,
                                         extraNodeArguments: ["--quantum", "off"])
            upTimes.append(Date().timeIntervalSince(start))
            if i < 2 { network.down(); try? FileManager.default.removeItem(atPath: dir) } else { lastNetwork = network }
        }
        report.add("spine.backbone_up_s", stats(upTimes), unit: "s", target: "≤ 5 s (32 nodes, make up → all ready)")

        guard let network = lastNetwork else { return }
        defer { network.down(); try? FileManager.default.removeItem(atPath: network.layout.root) }
        // Let the nodes settle into their idle heartbeat loop before measuring memory.
        let settle = Date(timeIntervalSinceNow: 3)
        while Date() < settle { usleep(100_000) }
        let pids = Array(network.livePIDs().values)
        let rss = pids.compactMap(Processes.residentBytes).map { Double($0) / 1_048_576 }
        let pss = pids.compactMap(proportionalBytes).map { Double($0) / 1_048_576 }
        report.add("spine.idle_node_rss_mb", stats(rss), unit: "MB", target: "≤ 25 MB per idle node")
        report.add("spine.idle_node_pss_mb", stats(pss), unit: "MB", target: "(shared pages split among nodes)")
        // CPU of the idle backbone (heartbeats, link-state floods, CURVE on every frame): all
        // 32 nodes' user + system time over five windows of 10 s, as a share of one core.
        var shares: [Double] = []
        for _ in 0..<5 {
            let before = pids.compactMap(cpuSeconds).reduce(0, +)
            let from = Date()
            while Date().timeIntervalSince(from) < 10 { usleep(100_000) }
            shares.append(100 * (pids.compactMap(cpuSeconds).reduce(0, +) - before) / Date().timeIntervalSince(from))
        }
        report.add("spine.idle_backbone_cpu_percent", stats(shares), unit: "% of a core",
                   target: "(32 idle nodes, all together, 10 s windows; issue 17: within 20 % of before CURVE)")

        let request = ControlRequest.ping(link: "Beijing-Langfang", count: 5000)
        let reply = network.query([NodeID("Beijing")], request: request, timeoutMs: 60_000)
        if let samples = reply[NodeID("Beijing")]?.ping?.roundTripsMicroseconds {
            report.add("spine.ipc_round_trip_us", stats(samples), unit: "µs", target: "p50 ≤ 100 µs (neighbours, ipc://)")
        }

        let meshDir = "/tmp/qkdnet-bench-\(getpid())-mesh"
        let start = Date()
        let mesh = try Network.up(topologyPath: "\(topologies)/china-16-cities.yaml", runDir: meshDir, binDirectory: binDirectory,
                                  extraNodeArguments: ["--quantum", "off"])
        report.add("spine.mesh_up_s", stats([Date().timeIntervalSince(start)]), unit: "s", target: "comes up (105 nodes)")
        mesh.down()
        try? FileManager.default.removeItem(atPath: meshDir)
    }

    /// User + system CPU seconds a process has used (/proc/PID/stat fields 14 and 15, in
    /// clock ticks).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: field 3 (state) is fields[0], so utime (14) and stime (15) are [11] and [12].
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func proportionalBytes(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("Pss:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kb = Int(fields[1]) { return kb * 1024 }
        }
        return nil
    }
}
