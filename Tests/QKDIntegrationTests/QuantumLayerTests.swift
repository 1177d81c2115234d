import QKDTestKit
import Foundation
import QKDCore
import QKDLaunch
import QKDPhysics
import QKDWire
import Testing

@Suite(.serialized) struct QuantumLayerTests {
    @Test func lineThreeLinksProduceSiftedKeyMatchingTheModel() throws {
        let network = try Harness.up("line-3.yaml", label: "quantum")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // Wait until every link has finished a few blocks at both ends.
        let enough = eventually(within: 60) {
            network.pools().links.allSatisfy { link in link.ends.count == 2 && link.ends.allSatisfy { $0.blocks >= 3 } }
        }
        #expect(enough)
        let pools = network.pools()
        let model = DecoyStateModel(LinkPhysics(lengthKm: 25))
        for link in pools.links {
            #expect(link.state == .up)
            let qber = try #require(link.qber)
            let gain = try #require(link.gain)
            // Blocks of 2^18 sifted signal bits, 10% sampled: E_μ within ±20%, Q_μ within ±3%.
            #expect(abs(qber / model.errorRate(0.5) - 1) < 0.2, "\(link.link): QBER \(qber)")
            #expect(abs(gain / model.gain(0.5) - 1) < 0.03, "\(link.link): gain \(gain)")
            #expect(link.siftedBitsTotal > 500_000)
            #expect(link.emulatedSeconds > 0 && link.wallSeconds > 0)
            // Both ends count the same sifted bits for the blocks both finished.
            let blocks = link.ends.map(\.blocks).min()!
            #expect(blocks >= 3)
            #expect(link.ends.allSatisfy { ($0.keyPerSignalPulse ?? 0) > 0 })
        }
        passed = true
    }

    @Test func nodesRunAtTheTimeScaleTheyAreGiven() throws {
        // line-3 says time_scale 1.0; --time-scale 0.01 must pace every link's source 100 times
        // slower than real time (a link may fall behind its pace, never run ahead of it).
        let network = try Network.up(topologyPath: Harness.topology("line-3.yaml"), runDir: Harness.runDirectory("timescale"),
                                     binDirectory: Harness.binDirectory, readyTimeoutSeconds: 60,
                                     extraNodeArguments: ["--time-scale", "0.01"])
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        #expect(network.timeScale == 0.01)
        // 60 s: 3 s of wall time on every link once the nodes run (start-up takes a few seconds more on 2 cores).
        let paced = eventually(within: 60) {
            network.pools().links.allSatisfy { $0.wallSeconds >= 3 && $0.emulatedSeconds > 0 }
        }
        #expect(paced)
        for link in network.pools().links {
            let pace = link.emulatedSeconds / link.wallSeconds
            #expect(pace <= 0.0125, "\(link.link): \(link.emulatedSeconds) emulated s in \(link.wallSeconds) wall s")
            #expect(pace >= 0.002, "\(link.link): the source barely ran (\(link.emulatedSeconds) emulated s in \(link.wallSeconds) wall s)")
        }
        passed = true
    }

    @Test func simLinkIsByteForByteReproducible() throws {
        let qkdctl = "\(Harness.binDirectory)/qkdctl"
        func run(_ seed: String) throws -> String {
            let dir = Harness.runDirectory("sim")
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let pid = try Processes.spawn(executable: qkdctl,
                                          arguments: ["sim", "link", "--distance", "60", "--pulses", "2e8", "--seed", seed, "--json"],
                                          outputPath: "\(dir)/out.json")
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            #expect(status == 0)
            return try String(contentsOfFile: "\(dir)/out.json", encoding: .utf8)
        }
        let a = try run("11"), b = try run("11"), c = try run("12")
        #expect(a == b)
        #expect(a != c)
        #expect(a.contains("\"key_per_pulse_model\""))
        #expect(a.contains("\"plob_per_pulse\""))
    }
}
