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
        let pools = network.pools()
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
        #expect(outcome.keysMatch)
        // The expected key: each end's last block, its length ℓ per key-basis bit, against the
        // same pipeline in-process. (A rate over emulated time mixes in the distillation backlog,
        // which a loaded machine varies: windows between commits measured 22 % low, and once two
        // commits with no emulated time between them.)
        let simulatedX = try #require(KeyDistiller.finiteKey(outcome.statistics, cascadeLeak: 0, configuration: distillation)).nX.reduce(0, +)
        let expectedPerX = Double(outcome.aliceDistillation!.finalBits) / Double(simulatedX)
        for report in pools.links {
            for end in report.ends {
                let block = try #require(end.finiteKey, "\(report.link) \(end.role): no block report")
                let perX = Double(block.keyBits) / Double(block.nX.reduce(0, +))
                #expect(abs(perX / expectedPerX - 1) < 0.2, "\(report.link) \(end.role): ℓ/n_X \(perX) vs \(expectedPerX) in-process")
            }
            #expect(report.keyRateBps > 0)
        }
        passed = true
    }

}
