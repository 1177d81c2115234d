import Foundation
import QKDCore
import QKDLaunch
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// Satellite networks as real processes: the free-space link's source follows the mission's
/// emulated time, which every node takes from the same origin (`qkdctl up`), and skips the
/// stretch before the pass.
@Suite(.serialized) struct SatelliteNetworkTests {
    /// Micius over Xinglong, the pass played ten times faster than real time (27 s of wall), in
    /// a mission of one hour that holds that pass only.
    @Test func aMiciusPassOverXinglongPutsTheSameKeysInBothPools() throws {
        let path = Harness.variant(of: "micius-xinglong.yaml", label: "fast",
                                   replacing: ["time_scale: 1.0": "time_scale: 10\nmission: { hours: 1 }"])
        // The variant sits elsewhere: the loss table it names goes beside it.
        let tables = Harness.variantDirectory + "/micius2017"
        try? FileManager.default.createDirectory(atPath: tables, withIntermediateDirectories: true)
        try? FileManager.default.copyItem(atPath: "\(Harness.repository)/Topologies/micius2017/link-loss.csv", toPath: "\(tables)/link-loss.csv")
        let topology = try TopologyParser.load(path: path)
        let timeline = try #require(topology.missionTimeline)
        #expect(timeline.passes.count == 1)
        let pass = try #require(timeline.passes.first?.pass)
        let network = try Network.up(topologyPath: path, runDir: Harness.runDirectory("micius"), binDirectory: Harness.binDirectory)
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // Before the pass: in the skipped gap or just into the pass, nothing distilled yet.
        let early = try #require(network.pools().links.first)
        #expect(early.ends.count == 2)
        #expect(early.generatedBitsTotal == 0)
        // The mission plays the gap in 2 s and the 273 s pass in 27 s; the block distils after
        // it. 120 s: four times that.
        #expect(eventually(within: 120) { (network.pools().links.first?.ends.allSatisfy { $0.generatedBitsTotal > 0 }) ?? false },
                "no key from the pass: \(network.pools().links)")
        let link = try #require(network.pools().links.first)
        for end in link.ends {
            let f = try #require(end.freeSpace)
            #expect(f.satellite == "Micius" && f.station == "Xinglong")
            #expect(f.passesCompleted >= 1)
            // Emulated time is past the pass's end, and reported beside the wall.
            #expect(f.emulatedUTC >= pass.end)
            #expect(end.blocks == 1, "\(end.role): \(end.blocks) blocks from one pass")
        }
        let alice = try #require(link.ends.first { $0.role == "alice" })
        // The whole pass was emitted: 0.1 s frames.
        #expect(abs(Double(alice.framesSent) - (pass.durationSeconds / 0.1).rounded(.up)) <= 1, "\(alice.framesSent) frames")
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
        print("micius on the network: \(alice.framesSent) frames, final \(alice.finalBitsTotal) bits, QBER \(link.qber ?? -1)")
        passed = audit.ok
    }
}
