import Foundation
import QKDCore
import QKDKeyPool
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing

/// Sifted blocks from a short emulated link, for distillation tests.
func siftedBlocks(km: Double, seed: UInt64, blocks: Int = 3) throws -> [(alice: SiftedBlock, bob: SiftedBlock)] {
    let physics = LinkPhysics(lengthKm: km)
    let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
    let config = BB84Configuration(pulsesPerFrame: 1 << 24, blockKeyBits: 100_000, source: source)
    var pulses: UInt64 = 1 << 24
    while true {
        let outcome = try LinkSimulation(physics: physics, configuration: config, seed: seed, secrecy: .secret).run(pulses: pulses, keepBlocks: true, distill: false)
        if outcome.blocks.count >= blocks { return Array(outcome.blocks.prefix(blocks)) }
        pulses *= 2
    }
}

func distillers(seed: UInt64) -> DistillationPair {
    let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
    // Blocks of 10^5 bits: the asymptotic bound (Lim et al.'s finite-size terms leave none).
    let config = DistillerConfiguration(source: source, ecEfficiency: 1.16).withAsymptoticBound()
    return DistillationPair(configuration: config, linkSeeds: SeedTree(root: seed).child("link/test"), session: 1, secrecy: .secret)
}

/// The key IDs an untampered run would commit for round 0 (blocks[0]).
func roundZeroIDs(seed: UInt64, blocks: [(alice: SiftedBlock, bob: SiftedBlock)]) throws -> [KeyID] {
    var pair = distillers(seed: seed)
    var ids: [KeyID] = []
    for block in blocks.prefix(2) { ids += pair.distil(alice: block.alice, bob: block.bob).alice.map(\.id) }
    return ids
}

@Suite struct KeyDistillerTests {
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func bothEndsDepositTheSameKeyIDsAndBits(seed: UInt64) throws {
        var pair = distillers(seed: seed)
        let psk = pair.alicePool.availableIDs
        var total = 0
        for (round, (a, b)) in try siftedBlocks(km: 20 + Double(seed) * 10, seed: seed, blocks: 4).enumerated() {
            #expect(!pair.alice.sifted(a).contains { if case .send = $0 { true } else { false } }, "Alice waits for Bob")
            let keys = pair.exchange(pair.bob.sifted(b), from: .bob)
            // Two-phase: a round's keys are released when the next round acknowledges it.
            if round == 0 {
                #expect(keys.alice.isEmpty && keys.bob.isEmpty)
                continue
            }
            #expect(!keys.alice.isEmpty)
            #expect(keys.alice.map(\.id) == keys.bob.map(\.id))
            for (x, y) in zip(keys.alice, keys.bob) {
                #expect(x.bits.bits == y.bits.bits)
                #expect(x.bits.count == 256)
                #expect(x.id.uuidString.count == 36)
            }
            // Distinct IDs, and no key bits in descriptions.
            #expect(Set(keys.alice.map(\.id)).count == keys.alice.count)
            #expect(!"\(keys.alice.first!)".contains("0101"))
            total += keys.alice.count
        }
        #expect(total > 0)
        #expect(pair.alice.counters.blocksDistilled == 4 && pair.bob.counters.blocksDistilled == 4)
        #expect(pair.alice.counters.leakedBits == pair.bob.counters.leakedBits)
        // One pool key per round authenticates it, the oldest (pre-shared) first, at both ends.
        #expect(pair.alicePool.counters.authenticationTaken == 4 && pair.bobPool.counters.authenticationTaken == 4)
        #expect(pair.alicePool.availableIDs == pair.bobPool.availableIDs)
        #expect(Array(pair.alicePool.availableIDs.prefix(psk.count - 4)) == Array(psk.dropFirst(4)))
        // The last round's keys wait, pending, for the next round's acknowledgement.
        #expect(pair.alicePool.pendingKeys > 0 && pair.alicePool.pendingKeys == pair.bobPool.pendingKeys)
        // Bob's efficiency uses the errors he actually corrected.
        let f = try #require(pair.bob.counters.ecEfficiency)
        #expect(f > 1 && f < 1.15, "f = \(f)")
    }

    /// Flips one bit of one message of one kind; the round must keep no key at either end.
    @Test(arguments: [MessageKind.cascadeRequest, .cascadeReply, .reconciliationDone, .reconciliationResult])
    func aSingleFlippedBitInAnyAuthenticatedMessageDiscardsTheRound(kind: MessageKind) throws {
        let blocks = try siftedBlocks(km: 25, seed: 11, blocks: 3)
        var g = Xoshiro256(seed: UInt64(kind.rawValue))
        for trial in 0..<3 {
            var pair = distillers(seed: 11)
            var tampered = false
            var seen = 0
            let target = Int(g.nextBounded(3))
            let keys = pair.distil(alice: blocks[0].alice, bob: blocks[0].bob) { k, payload in
                guard k == kind, !tampered else { return }
                if seen == target || kind == .reconciliationDone || kind == .reconciliationResult {
                    // Flip a bit after the 8-byte block number (which would merely misroute).
                    let i = 8 + Int(g.nextBounded(UInt64(payload.count - 8))) 
                    payload[i] ^= UInt8(1) << UInt8(g.nextBounded(8))
                    tampered = true
                }
                seen += 1
            }
            #expect(tampered, "\(kind) trial \(trial): nothing was tampered with")
            #expect(keys.alice.isEmpty && keys.bob.isEmpty)
            let (alice, bob) = (pair.alice.counters, pair.bob.counters)
            let failures = alice.blocksFailedAuthentication + alice.blocksFailedVerification
                + bob.blocksFailedAuthentication + bob.blocksFailedVerification + alice.messagesRejected + bob.messagesRejected
            #expect(failures >= 1, "\(kind): the failure was not counted")
            // Two clean rounds follow: whatever is committed is identical at both ends, and
            // nothing from the tampered round 0 is ever committed, at either end.
            var committed: ([DistilledKey], [DistilledKey]) = ([], [])
            for block in blocks.dropFirst() {
                let k = pair.distil(alice: block.alice, bob: block.bob)
                committed.0 += k.alice
                committed.1 += k.bob
            }
            #expect(committed.0.map(\.id) == committed.1.map(\.id), "\(kind): ends committed different keys")
            for (x, y) in zip(committed.0, committed.1) { #expect(x.bits.bits == y.bits.bits) }
            let roundZero = Set(try roundZeroIDs(seed: 11, blocks: blocks))
            #expect(committed.0.allSatisfy { !roundZero.contains($0.id) }, "\(kind): a tampered round's key was committed")
            for id in roundZero {
                #expect(pair.alicePool.state(of: id) != .available && pair.bobPool.state(of: id) != .available)
            }
        }
    }

    @Test func aBlockCascadeCannotCorrectIsCaughtByVerification() throws {
        var pair = distillers(seed: 5)
        let (a, b) = try siftedBlocks(km: 25, seed: 5, blocks: 1)[0]
        // Corrupt Bob's key beyond what Cascade may correct (its bound is n/4 corrections).
        var bits = b.key.bits
        var g = Xoshiro256(seed: 1)
        for i in 0..<bits.count where g.nextUnitDouble() < 0.4 { bits.flip(i) }
        let broken = SiftedBlock(index: b.index, key: BitVectorBox(bits), statistics: b.statistics, transcript: b.transcript)
        let keys = pair.distil(alice: a, bob: broken)
        #expect(keys.alice.isEmpty && keys.bob.isEmpty)
        #expect(pair.alice.counters.blocksFailedVerification == 1)
        #expect(pair.bob.counters.blocksFailedVerification == 1)
        #expect(pair.alicePool.pendingKeys == 0 && pair.bobPool.pendingKeys == 0)
    }
}

/// A link without decoy states distils key from GLLP's untagged share: the estimates take the
/// multi-photon probability off the signal gain, and both ends keep the same keys.
@Suite struct NoDecoyDistillationTests {
    @Test func aWeakSignalLinkWithoutDecoysDistilsKeyFromTheUntaggedShare() throws {
        let mu = 0.05
        let source = SourceSettings(signal: mu, decoy: 0, signalProbability: 1, decoyProbability: 0, vacuumProbability: 0, decoyStates: false)
        let config = BB84Configuration(pulsesPerFrame: 1 << 24, blockKeyBits: 100_000, source: source)
        let outcome = try LinkSimulation(physics: LinkPhysics(lengthKm: 5), configuration: config, seed: 3, secrecy: .secret)
            .run(pulses: 1 << 28, keepBlocks: true, distill: false)
        let blocks = Array(outcome.blocks.prefix(2))
        try #require(blocks.count == 2)
        let e = blocks[0].alice.statistics.estimates(source: source, ecEfficiency: 1.16)
        let multi = 1 - (1 + mu) * Foundation.exp(-mu)
        let qsLower = BlockStatistics.wilson(blocks[0].alice.statistics.clicks[0], blocks[0].alice.statistics.pulses[0], 5).lower
        #expect(e.singlePhotonGainLower > 0 && abs(e.singlePhotonGainLower / e.gainSignal - (1 - multi / qsLower)) < 1e-12, "\(e)")
        #expect(e.e1Upper > e.qberSignal && e.e1Upper < 0.05 && e.keyPerSignalPulse > 0, "\(e)")
        #expect(KeyDistiller.abortReason(e, qberThreshold: 0.11) == nil)
        var pair = DistillationPair(configuration: DistillerConfiguration(source: source, ecEfficiency: 1.16).withAsymptoticBound(),
                                    linkSeeds: SeedTree(root: 3).child("link/test"), session: 1, secrecy: .secret)
        var keys = 0
        for block in blocks {
            let out = pair.distil(alice: block.alice, bob: block.bob)
            #expect(out.alice.map(\.id) == out.bob.map(\.id) && out.alice.map(\.bits.bits) == out.bob.map(\.bits.bits))
            keys += out.alice.count
        }
        #expect(keys > 0, "no-decoy blocks yield key")
    }
}
