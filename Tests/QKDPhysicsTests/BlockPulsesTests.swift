import QKDCore
import QKDKeyPool
import QKDPhysics
@testable import QKDPostProcessing
import Testing

/// Blocks of N pulses (`block_pulses`, Lim et al.'s N): a block closes at the frame that
/// brings it to N pulses, whatever its key bits; without N, at `blockKeyBits` key bits.
@Suite struct BlockPulsesTests {
    /// The first two blocks both ends close, sifting frames of `framePulses` at 20 km.
    static func blocks(framePulses: UInt32, blockKeyBits: Int, blockPulses: UInt64?) throws -> [(SiftedBlock, SiftedBlock)] {
        let config = BB84Configuration(pulsesPerFrame: framePulses, blockKeyBits: blockKeyBits, blockPulses: blockPulses,
                                       source: SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15),
                                       darkCountProbability: 1e-6)
        let seeds = SeedTree(root: 9).child("link/n")
        var alice = BB84Sender(configuration: config, seeds: seeds, secrecy: .reproducible)
        var bob = BB84Receiver(configuration: config, seeds: seeds, misalignment: 0.015, darkCountProbability: 1e-6)
        let eta = LinkPhysics(lengthKm: 20).transmittance
        var closed: [(SiftedBlock, SiftedBlock)] = []
        for _ in 0..<400 where closed.count < 2 {
            let announcement = try bob.received(alice.nextFrame(transmittance: eta))
            guard let reveal = try bob.received(alice.received(announcement)) else { continue }
            let (result, a) = try alice.received(reveal)
            closed.append((a, try bob.received(result)))
        }
        return closed
    }

    @Test func aBlockOfNPulsesClosesAtTheFrameThatReachesN() throws {
        // 2.5 frames' worth: the block closes after the third frame, 3e6 pulses, both ends.
        let closed = try Self.blocks(framePulses: 1_000_000, blockKeyBits: 1 << 26, blockPulses: 2_500_000)
        #expect(closed.count == 2)
        for (a, b) in closed {
            #expect(a.statistics.pulses.reduce(0, +) == 3_000_000)
            #expect(a.statistics == b.statistics && a.key.count == b.key.count && a.key.count > 0)
        }
    }

    @Test func withoutNABlockClosesByKeyBits() throws {
        let closed = try Self.blocks(framePulses: 1_000_000, blockKeyBits: 5_000, blockPulses: nil)
        #expect(closed.count == 2)
        for (a, _) in closed {
            // One frame at 20 km sifts about 3,600 X bits (p_X 0.5): the block closes after its second.
            #expect(a.key.count >= 5_000 && a.statistics.pulses.reduce(0, +) == 2_000_000, "\(a.key.count) bits, \(a.statistics.pulses) pulses")
        }
    }
}
