import Foundation
import QKDCore
import QKDPhysics
import QKDPostProcessing
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// A satellite network's nodes on a manual clock: the free-space link's source follows the
/// mission's emulated time (idle between passes, the skipped gap a couple of seconds), the
/// transmittance follows the orbit frame by frame, and one pass is one block.
@Suite struct DeterministicSatelliteTests {
    static let topologies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Topologies").path

    static func report(_ net: DeterministicNetwork, _ node: String) -> QuantumLinkReport? {
        net.control(.pools, to: node)?.pools?.first
    }

    @Test func aMiciusPassOverXinglongDistilsOneBlockOfIdenticalKeysAtBothEnds() throws {
        let topology = try TopologyParser.load(path: "\(Self.topologies)/micius-xinglong.yaml")
        let net = try DeterministicNetwork(topology: topology, composable: true)
        defer { net.stop() }
        let timeline = try #require(topology.missionTimeline)
        let link = try #require(topology.link(named: "Micius-Xinglong"))
        let pass = try #require(timeline.passes(of: link.index).first)
        let origin = net.clock.now()
        let preShared = net.node("Xinglong")!.pools.read(link.name) { $0.heldKeys }!

        // Halfway through the gap before the pass: links up, nothing emitted, not in view.
        let halfGap = timeline.wall(atUTC: (timeline.mission.start + pass.start) / 2)
        net.run(seconds: halfGap)
        #expect(net.linkState("Micius", link.name) == .up)
        let idle = try #require(Self.report(net, "Micius"))
        #expect(idle.framesSent == 0)
        #expect(idle.freeSpace?.inView == false)
        #expect(abs((idle.freeSpace?.emulatedUTC ?? 0) - (timeline.mission.start + pass.start) / 2) < 60)

        // Mid-pass: frames flow at the time scale, in view, at the orbit's range.
        let mid = timeline.wall(atUTC: pass.culmination)
        net.run(seconds: mid - Double(net.clock.now().nanoseconds(since: origin)) / 1e9)
        let during = try #require(Self.report(net, "Micius"))
        #expect(during.freeSpace?.inView == true)
        #expect(abs((during.freeSpace?.rangeKm ?? 0) - pass.minimumRangeKm) < 5, "\(String(describing: during.freeSpace))")
        // About half the pass's frames of 0.1 s (the source keeps pace; 4 frames in flight).
        let half = (pass.culmination - pass.start) / 0.1
        #expect(abs(Double(during.framesSent) - half) < 8, "\(during.framesSent) frames, expected about \(half)")
        #expect(during.blocks == 0)

        // After the pass: one block at both ends, its keys distilled and identical.
        let distilled = net.run(seconds: pass.durationSeconds + 60) {
            (net.node("Xinglong")!.pools.read(link.name) { $0.counters.deposited } ?? 0) > UInt64(preShared)
                && (net.node("Micius")!.pools.read(link.name) { $0.counters.deposited } ?? 0) > UInt64(preShared)
        }
        #expect(distilled, "no key from the pass")
        net.run(seconds: 0.001)
        let a = net.digests("Micius", link: link.name), b = net.digests("Xinglong", link: link.name)
        #expect(a.count > preShared)
        #expect(a.map(\.keyID) == b.map(\.keyID))
        #expect(a.map(\.digest) == b.map(\.digest))
        let after = try #require(Self.report(net, "Micius")), ground = try #require(Self.report(net, "Xinglong"))
        #expect(after.blocks == 1 && ground.blocks == 1)
        #expect(after.freeSpace?.passesCompleted == 1)
        let frames = (pass.durationSeconds / 0.1).rounded(.up)
        #expect(abs(Double(after.framesSent) - frames) <= 1, "\(after.framesSent) frames for a \(pass.durationSeconds) s pass")

        // The same pass in-process (PassSimulation, other seeds): the key within 10 %.
        guard case .freeSpace(let channel) = link.medium else { Issue.record("not free space"); return }
        let orbit = topology.node(NodeID("Micius"))!.orbit!, site = topology.node(NodeID("Xinglong"))!.station!
        let p = link.physics
        var configuration = BB84Configuration(pulsesPerFrame: UInt32(p.sourceRateHz / 10), source: link.distillation.source)
        configuration.darkCountProbability = p.darkCountProbability
        let sim = try PassSimulation(configuration: configuration, distillation: link.distillation, detectorEfficiency: p.detectorEfficiency,
                                     misalignment: p.misalignment, sourceRateHz: p.sourceRateHz, channel: channel, seed: 7,
                                     secrecy: .reproducible).run(durationSeconds: pass.durationSeconds) { t in
            let look = site.look(at: orbit.earthFixedPosition(at: pass.start + t))
            return (look.rangeKm, look.elevationDegrees)
        }
        let finalBits = Double(after.finalBitsTotal)
        #expect(abs(finalBits / Double(sim.finalKeyBits) - 1) < 0.1, "network \(finalBits) bits, in-process \(sim.finalKeyBits)")
        print("micius pass on the network: \(after.framesSent) frames, \(after.keyBitsSifted) key-basis bits, final \(after.finalBitsTotal) bits (in-process \(sim.finalKeyBits))")
    }
}
