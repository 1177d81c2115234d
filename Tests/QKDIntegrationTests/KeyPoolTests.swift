import QKDTestKit
import Foundation
import QKDCore
import QKDLaunch
import QKDLink
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing

@Suite(.serialized) struct KeyPoolTests {
    @Test func bothEndsOfEveryLinkHoldTheSameKeysAtTheExpectedRate() throws {
        let network = try Network.up(topologyPath: Harness.topology("line-3.yaml"), runDir: Harness.runDirectory("keys"),
                                     binDirectory: Harness.binDirectory)
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // Enough committed blocks that the one or two still in flight matter little.
        let filled = eventually(within: 120) {
            network.pools().links.allSatisfy { $0.ends.count == 2 && $0.ends.allSatisfy { $0.storedKeys >= 8000 } }
        }
        #expect(filled)
        // Steady state: the rate is the slope of committed bits over emulated time, measured per
        // link between two commits (each end of the window is the first report after a block
        // was committed, so the window holds whole blocks and no part of one: a block is about
        // an emulated second here, and a window starting anywhere between two commits was off
        // by up to one block) over at least 25 Mbit (several blocks).
        let links = network.topology.links.map(\.name)
        let initial = Dictionary(uniqueKeysWithValues: network.pools().links.map { ($0.link, $0.generatedBitsTotal) })
        var starts: [String: PoolsStatus.Link] = [:], ends: [String: PoolsStatus.Link] = [:]
        var pools = network.pools()
        let measured = eventually(within: 180) {
            pools = network.pools()
            for link in pools.links {
                if let start = starts[link.link] {
                    if ends[link.link] == nil, link.generatedBitsTotal >= start.generatedBitsTotal + 25_000_000 { ends[link.link] = link }
                } else if link.generatedBitsTotal != initial[link.link] {
                    starts[link.link] = link
                }
            }
            return links.allSatisfy { ends[$0] != nil }
        }
        #expect(measured, "windows of 25 Mbit: started \(starts.keys.sorted()), ended \(ends.keys.sorted())")
        // Both ends hold the same available keys with the same bits (keyed digests).
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
        #expect(audit.linksChecked == network.topology.links.count)
        for link in audit.links { #expect(link.keysMatched >= 8000, "\(link.link): \(link.keysMatched) keys matched: \(audit) \(pools)") }
        for link in network.topology.links {
            let report = try #require(pools.links.first { $0.link == link.name })
            #expect(report.blocksFailedVerification == 0)
            let f = try #require(report.ecEfficiency)
            #expect(f > 1 && f < 1.15, "\(link.name): f \(f)")
            #expect(report.authBitsTotal > 0)
        }
        // The same pipeline in-process, same link, source, block size and bound: the expected rate.
        let link = network.topology.links[0], p = link.physics
        let physics = LinkPhysics(lengthKm: link.lengthKm, lossDbPerKm: p.lossDbPerKm, detectorEfficiency: p.detectorEfficiency,
                                  darkCountProbability: p.darkCountProbability, misalignment: p.misalignment, ecEfficiency: p.ecEfficiency,
                                  signalIntensity: p.signalIntensity, decoyIntensity: p.decoyIntensity)
        let distillation = link.distillation
        let config = BB84Configuration(pulsesPerFrame: 10_000_000, blockKeyBits: p.blockKeyBits, source: distillation.source)
        let outcome = try LinkSimulation(physics: physics, configuration: config, seed: 3, secrecy: .secret, bound: distillation.bound)
            .run(pulses: 8_000_000_000)
        let finalPerPulse = Double(outcome.aliceDistillation!.finalBits) / Double(outcome.pulses)
        #expect(outcome.keysMatch)
        for name in links {
            let start = try #require(starts[name]), end = try #require(ends[name])
            let expected = finalPerPulse * 1e9
            let rate = Double(end.generatedBitsTotal - start.generatedBitsTotal) / (end.emulatedSeconds - start.emulatedSeconds)
            #expect(abs(rate / expected - 1) < 0.2, "\(name): \(rate) bit/s vs \(expected)")
            #expect(end.keyRateBps > 0)
        }
        passed = true
    }

}
