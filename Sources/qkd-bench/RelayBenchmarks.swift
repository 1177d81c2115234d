import Foundation
import QKDCore
import QKDLaunch

/// Issue 6's relay numbers: end-to-end relay latency across the backbone's 31 hops and between
/// neighbours, measured by the source node (request to release), release build. The quantum
/// layer runs 10^4 times slower than real time so that the relays, which use the pre-shared
/// keys, are measured alone.
enum RelayBenchmarks {
    static func run(_ report: inout BenchReport, topologies: String, binDirectory: String) throws {
        let dir = "/tmp/qkdnet-bench-relay-\(getpid())"
        let network = try Network.up(topologyPath: "\(topologies)/beijing-shanghai.yaml", runDir: dir, binDirectory: binDirectory,
                                     readyTimeoutSeconds: 60, extraNodeArguments: ["--time-scale", "0.0001"])
        defer {
            network.down()
            try? FileManager.default.removeItem(atPath: dir)
        }
        let beijing = NodeID("Beijing"), shanghai = NodeID("Shanghai")
        let deadline = Date(timeIntervalSinceNow: 60)
        var hops = 0
        while Date() < deadline {
            if let path = try? network.routes(from: beijing, to: shanghai).get().path {
                hops = path.count - 1
                break
            }
            usleep(50_000)
        }
        // 40 relays each way: a 256-bit relay takes two keys of every link it crosses (pad and
        // tag), the slowed quantum layer refills nothing, and the first link's 256 pre-shared
        // keys (less its authentication reserve) must last for both series.
        var across: [Double] = []
        for _ in 0..<40 {
            if case .success(let r) = network.relay(from: beijing, to: shanghai), let ms = r.latencyMs { across.append(ms) }
        }
        report.add("relay.backbone_\(hops)_hops_ms", stats(across), unit: "ms", target: "p50 ≤ 20 ms (Beijing → Shanghai)")
        let neighbour = network.topology.links(of: beijing).first!.peer(of: beijing)!
        var near: [Double] = []
        for _ in 0..<40 {
            if case .success(let r) = network.relay(from: beijing, to: neighbour), let ms = r.latencyMs { near.append(ms) }
        }
        report.add("relay.neighbour_ms", stats(near), unit: "ms", target: "(1 hop)")
    }
}
