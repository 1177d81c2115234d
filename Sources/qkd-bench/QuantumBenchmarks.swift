import Foundation
import QKDCore
import QKDLaunch
import QKDPhysics
import QKDPostProcessing
import QKDWire

/// Issue 3's numbers: pulses emulated per second on one core (sampling, detection, sifting,
/// estimation, wire encoding), and the running backbone's emulated time per wall time.
enum QuantumBenchmarks {
    static func run(_ report: inout BenchReport, topologies: String, binDirectory: String) throws {
        for km in [25.0, 50, 100] {
            let physics = LinkPhysics(lengthKm: km)
            let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
            let config = BB84Configuration(pulsesPerFrame: 1 << 26, blockKeyBits: 1 << 20, source: source)
            var rates: [Double] = []
            for seed in 1...3 {
                let start = Date()
                let pulses: UInt64 = 5_000_000_000
                _ = try LinkSimulation(physics: physics, configuration: config, seed: UInt64(seed), secrecy: .secret).run(pulses: pulses, distill: false)
                rates.append(Double(pulses) / Date().timeIntervalSince(start) / 1e9)
            }
            report.add("quantum.pulses_per_s_\(Int(km))km", stats(rates), unit: "Gpulse/s", target: "≥ 1 Gpulse/s per core at 50 km")
            var full: [Double] = []
            for seed in 1...2 {
                let start = Date()
                let pulses: UInt64 = 5_000_000_000
                _ = try LinkSimulation(physics: physics, configuration: config, seed: UInt64(seed), secrecy: .secret).run(pulses: pulses)
                full.append(Double(pulses) / Date().timeIntervalSince(start) / 1e9)
            }
            report.add("pipeline.pulses_per_s_\(Int(km))km", stats(full), unit: "Gpulse/s",
                       target: "(quantum layer + Cascade + verification + PA, both ends, one core)")
        }

        let dir = "/tmp/qkdnet-bench-\(getpid())-q"
        let network = try Network.up(topologyPath: "\(topologies)/beijing-shanghai.yaml", runDir: dir, binDirectory: binDirectory)
        defer { network.down(); try? FileManager.default.removeItem(atPath: dir) }
        let settle = Date(timeIntervalSinceNow: 20)
        while Date() < settle { usleep(200_000) }
        let pools = network.pools()
        let ratios = pools.links.filter { $0.wallSeconds > 0 }.map { $0.emulatedSeconds / $0.wallSeconds }
        report.add("quantum.backbone_time_ratio", stats(ratios), unit: "emulated s / wall s",
                   target: "aim ≥ 1.0 (31 links at 1 GHz on 2 cores), per link after 20 s")
        let pids = Array(network.livePIDs().values)
        report.add("quantum.busy_node_rss_mb", stats(pids.compactMap(Processes.residentBytes).map { Double($0) / 1_048_576 }),
                   unit: "MB", target: "(links running)")
        let reply = network.query([NodeID("Beijing")],
                                        request: ControlRequest.ping(link: "Beijing-Langfang", count: 2000), timeoutMs: 60_000)
        if let samples = reply[NodeID("Beijing")]?.ping?.roundTripsMicroseconds {
            report.add("quantum.loaded_round_trip_us", stats(samples), unit: "µs", target: "(classical round trip with every link busy)")
        }
    }
}
