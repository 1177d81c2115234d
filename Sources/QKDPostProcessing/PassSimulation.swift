import QKDCore
import QKDKeyPool
import QKDPhysics
import QKDWire

/// One satellite pass run in-process with the live instances and codecs (as `LinkSimulation`
/// does for a fibre): frames of `framePulses` pulses, each sent at the transmittance the pass
/// has at the frame's middle (η = η_det · 10^(−loss/10), loss from the free-space channel at the
/// frame's range and elevation), and the whole pass distilled as one block, so the finite-key
/// bound (Lim et al. 2014) applies per pass. Per second it tallies range, elevation, loss, the
/// sifted signal-state bits (both bases matched, before any is revealed) and the QBER of that
/// second's key-basis bits.
public struct PassSimulation: Sendable {
    public var configuration: BB84Configuration
    public var distillation: DistillerConfiguration
    public var detectorEfficiency: Double
    public var misalignment: Double
    public var sourceRateHz: Double
    public var channel: FreeSpaceChannel
    public var seed: UInt64
    public var secrecy: Secrecy

    /// Where the satellite is seen `t` seconds into the pass.
    public typealias Geometry = @Sendable (_ t: Double) -> (rangeKm: Double, elevationDegrees: Double)
    /// The sky's light at the station `t` seconds into the pass (counts per second per detector).
    public typealias Background = @Sendable (_ t: Double) -> Double

    public init(configuration: BB84Configuration, distillation: DistillerConfiguration, detectorEfficiency: Double, misalignment: Double,
                sourceRateHz: Double, channel: FreeSpaceChannel, seed: UInt64, secrecy: Secrecy) {
        var configuration = configuration
        configuration.blockKeyBits = 1 << 26
        self.configuration = configuration
        self.distillation = distillation
        self.detectorEfficiency = detectorEfficiency
        self.misalignment = misalignment
        self.sourceRateHz = sourceRateHz
        self.channel = channel
        self.seed = seed
        self.secrecy = secrecy
    }

    public struct Second: Sendable, Equatable {
        public var t: Double
        public var rangeKm: Double
        public var elevationDegrees: Double
        public var lossDb: Double
        public var siftedBits: UInt64
        /// Key-basis (X) bits of the second, and how many differ between the ends.
        public var keyBits: Int
        public var keyErrors: Int
        public var qber: Double { keyBits > 0 ? Double(keyErrors) / Double(keyBits) : 0 }
    }

    public struct Outcome: Sendable {
        public var seconds: [Second]
        public var pulses: UInt64
        public var siftedBits: UInt64
        public var keyBits: Int
        public var keyErrors: Int
        public var qber: Double { keyBits > 0 ? Double(keyErrors) / Double(keyBits) : 0 }
        public var finalKeyBits: UInt64
        public var keysMatch: Bool
        /// The pass's bound (its counts, the Cascade leak); nil without decoys.
        public var finiteKey: FiniteKeyReport?
    }

    /// Runs `durationSeconds` of pass; `background` adds the sky's light to the detectors'
    /// dark counts frame by frame (`SkyBackground.yield`).
    public func run(durationSeconds: Double, geometry: Geometry, background: Background? = nil) throws -> Outcome {
        let seeds = SeedTree(root: seed).child("sim/pass")
        var ends = SimulatedEnds(configuration: configuration, distillation: distillation, misalignment: misalignment,
                                 darkCountProbability: configuration.darkCountProbability, seeds: seeds, secrecy: secrecy)
        let framePulses = UInt64(configuration.pulsesPerFrame)
        let pulses = UInt64(durationSeconds * sourceRateHz)
        let frames = (pulses + framePulses - 1) / framePulses
        var seconds: [Second] = []
        /// Per frame: its second and its key-basis bits (where it sits in the block's key).
        var keyBitsPerFrame: [(second: Int, bits: Int)] = []
        var outcome = Outcome(seconds: [], pulses: pulses, siftedBits: 0, keyBits: 0, keyErrors: 0, finalKeyBits: 0, keysMatch: true)
        for frameNumber in 0..<frames {
            if frameNumber == frames - 1 { ends.alice = ends.alice.withBlockSize(0) }  // the pass is one block
            let size = min(framePulses, pulses - frameNumber * framePulses)
            let middle = (Double(frameNumber * framePulses) + Double(size) / 2) / sourceRateHz
            let at = geometry(middle)
            let second = Int(Double(frameNumber * framePulses) / sourceRateHz)
            while seconds.count <= second {
                let t = Double(seconds.count)
                let g = geometry(t)
                seconds.append(Second(t: t, rangeKm: g.rangeKm, elevationDegrees: g.elevationDegrees,
                                      lossDb: channel.lossDb(rangeKm: g.rangeKm, elevationDegrees: g.elevationDegrees),
                                      siftedBits: 0, keyBits: 0, keyErrors: 0))
            }
            let eta = detectorEfficiency * channel.transmittance(rangeKm: at.rangeKm, elevationDegrees: at.elevationDegrees)
            let yield = background.map {
                SkyBackground.yield(darkCountProbability: configuration.darkCountProbability, countsPerSecond: $0(middle), sourceRateHz: sourceRateHz)
            }
            let (announcement, reply, blocks) = try ends.exchange(transmittance: eta, pulses: UInt32(size), darkCountProbability: yield)
            var xBits = 0
            for i in reply.matches.indices where reply.matches[i] == 1 {
                if reply.classes[i] == UInt8(PulseClass.signal.rawValue) { seconds[second].siftedBits += 1 }
                if announcement.bases[i] == Basis.x.rawValue { xBits += 1 }
            }
            keyBitsPerFrame.append((second, xBits))
            guard let (aliceBlock, bobBlock) = blocks else { continue }
            // The block's key is its key-basis bits in sifting order: frame by frame.
            var offset = 0
            for (s, n) in keyBitsPerFrame where n > 0 {
                let a = aliceBlock.key.bits.slice(from: offset, length: n), b = bobBlock.key.bits.slice(from: offset, length: n)
                seconds[s].keyBits += n
                seconds[s].keyErrors += a.hammingDistance(to: b)
                offset += n
            }
            keyBitsPerFrame.removeAll()
            outcome.keyBits += aliceBlock.key.count
            outcome.keyErrors += aliceBlock.key.bits.hammingDistance(to: bobBlock.key.bits)
            let keys = ends.pair.distil(alice: aliceBlock, bob: bobBlock)
            outcome.keysMatch = outcome.keysMatch && SimulatedEnds.identical(keys.alice, keys.bob)
            outcome.finiteKey = KeyDistiller.finiteKey(aliceBlock.statistics, cascadeLeak: Int(ends.pair.alice.counters.leakedBits), configuration: distillation)
        }
        outcome.seconds = seconds
        outcome.siftedBits = seconds.reduce(0) { $0 + $1.siftedBits }
        outcome.finalKeyBits = ends.pair.alice.counters.finalBits
        return outcome
    }
}
