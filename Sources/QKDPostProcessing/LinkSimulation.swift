import QKDCore
import QKDKeyPool
import QKDPhysics
import QKDWire

/// One link run in-process with the same instances and wire codecs the live nodes use:
/// Alice's sender and Bob's receiver exchange encoded messages directly. Its statistics
/// (counts, errors, leak, key lengths) are deterministic for a seed; its key bits too when
/// `secrecy` is reproducible, and fresh from the OS CSPRNG (with a fresh bootstrap) otherwise.
/// Used by `qkdctl sim link`, tests and benchmarks.
public struct LinkSimulation: Sendable {
    public let physics: LinkPhysics
    public let configuration: BB84Configuration
    public let seed: UInt64
    public let secrecy: Secrecy
    public let bound: DistillerConfiguration.LengthBound?

    /// u_α of the statistical-fluctuation bounds in the final estimates.
    public let standardDeviations: Double

    /// `bound`: the distillation's key-length bound (nil: Lim et al. 2014 with the default ε).
    public init(physics: LinkPhysics, configuration: BB84Configuration, seed: UInt64, secrecy: Secrecy, standardDeviations: Double = 5,
                bound: DistillerConfiguration.LengthBound? = nil) {
        self.bound = bound
        self.physics = physics
        self.secrecy = secrecy
        var configuration = configuration
        configuration.darkCountProbability = physics.darkCountProbability
        self.configuration = configuration
        self.seed = seed
        self.standardDeviations = standardDeviations
    }

    public struct Outcome: Sendable {
        public var pulses: UInt64
        public var statistics: BlockStatistics
        public var estimates: Estimates
        public var siftedBits: UInt64
        /// Key bits left after removing the estimation sample, and how many differ between
        /// Alice and Bob (known only to a simulation).
        public var keyBits: Int
        public var keyErrors: Int
        public var blocks: [(alice: SiftedBlock, bob: SiftedBlock)]
        /// Distillation at each end (nil when the run did not distil).
        public var aliceDistillation: KeyDistiller.Counters?
        public var bobDistillation: KeyDistiller.Counters?
        /// Keys committed at each end, in order.
        public var aliceKeys: [DistilledKey] = []
        public var bobKeys: [DistilledKey] = []
        public var keysMatch = true
        /// The bound over the whole run taken as one block of `pulses` pulses (its counts, and
        /// the Cascade leak of every sub-block): what privacy amplification over all of them
        /// would allow. Nil without decoys.
        public var wholeRun: FiniteKeyReport?
    }

    /// Runs exactly `pulses` pulses (the last frame may be shorter); the last, partial block is closed
    /// at the end so every sifted bit is accounted for. `keepBlocks` keeps the key blocks.
    public func run(pulses: UInt64, keepBlocks: Bool = false, distill: Bool = true) throws -> Outcome {
        let seeds = SeedTree(root: seed).child("sim/link")
        var distillation = DistillerConfiguration(source: configuration.source, ecEfficiency: physics.ecEfficiency)
        if let bound { distillation.bound = bound }
        var ends = SimulatedEnds(configuration: configuration, distillation: distillation, misalignment: physics.misalignment,
                                 darkCountProbability: physics.darkCountProbability, seeds: seeds, secrecy: secrecy)
        let frames = (pulses + UInt64(configuration.pulsesPerFrame) - 1) / UInt64(configuration.pulsesPerFrame)
        var total = BlockStatistics()
        var blocks: [(SiftedBlock, SiftedBlock)] = []
        var keyBits = 0, keyErrors = 0
        var committedAlice: [DistilledKey] = [], committedBob: [DistilledKey] = []
        for frameNumber in 0..<frames {
            if frameNumber == frames - 1 {
                // Close the last block at the last frame, whatever its size.
                ends.alice = ends.alice.withBlockSize(0)
            }
            let size = UInt32(min(UInt64(configuration.pulsesPerFrame), pulses - frameNumber * UInt64(configuration.pulsesPerFrame)))
            guard let (aliceBlock, bobBlock) = try ends.exchange(transmittance: physics.transmittance, pulses: size).blocks else { continue }
            total = total + aliceBlock.statistics
            keyBits += aliceBlock.key.count
            keyErrors += aliceBlock.key.bits.hammingDistance(to: bobBlock.key.bits)
            if keepBlocks { blocks.append((aliceBlock, bobBlock)) }
            if distill {
                let keys = ends.pair.distil(alice: aliceBlock, bob: bobBlock)
                // Keys are committed one round later (two-phase): compare what both committed.
                committedAlice += keys.alice
                committedBob += keys.bob
            }
        }
        let keysMatch = SimulatedEnds.identical(committedAlice, committedBob)
        let estimates = total.estimates(source: configuration.source, ecEfficiency: physics.ecEfficiency,
                                        siftingFactor: physics.siftingFactor, standardDeviations: standardDeviations)
        return Outcome(pulses: pulses, statistics: total, estimates: estimates,
                       siftedBits: total.sifted.reduce(0, +), keyBits: keyBits, keyErrors: keyErrors,
                       blocks: blocks.map { (alice: $0.0, bob: $0.1) },
                       aliceDistillation: distill ? ends.pair.alice.counters : nil,
                       bobDistillation: distill ? ends.pair.bob.counters : nil,
                       aliceKeys: committedAlice, bobKeys: committedBob, keysMatch: keysMatch,
                       wholeRun: KeyDistiller.finiteKey(total, cascadeLeak: Int(distill ? ends.pair.alice.counters.leakedBits : 0),
                                                        configuration: distillation))
    }
}

/// Both ends of one in-process link, with the bootstrap a secret run draws (or a reproducible
/// one derives from `seeds`), and one frame carried through the wire codecs as live nodes send
/// it: what `LinkSimulation` and `PassSimulation` share.
struct SimulatedEnds {
    var alice: BB84Sender
    var bob: BB84Receiver
    var pair: DistillationPair

    init(configuration: BB84Configuration, distillation: DistillerConfiguration, misalignment: Double, darkCountProbability: Double,
         seeds: SeedTree, secrecy: Secrecy) {
        var bootstrapRandom = SecretRandom.make(secrecy, seeds: seeds, label: "bootstrap")
        let bootstrap = secrecy == .reproducible
            ? LinkBootstrap.derived(linkSeeds: seeds, keyBits: distillation.keyBits, count: distillation.preSharedKeys)
            : LinkBootstrap.random(&bootstrapRandom, keyBits: distillation.keyBits, count: distillation.preSharedKeys)
        alice = BB84Sender(configuration: configuration, seeds: seeds, secrecy: secrecy, authenticationKey: bootstrap.authenticationKey)
        bob = BB84Receiver(configuration: configuration, seeds: seeds, misalignment: misalignment,
                           darkCountProbability: darkCountProbability, authenticationKey: bootstrap.authenticationKey)
        pair = DistillationPair(configuration: distillation, linkSeeds: seeds, session: 0, secrecy: secrecy, bootstrap: bootstrap)
    }

    /// One frame of `pulses` at transmittance `transmittance`: Bob's announcement, Alice's reply,
    /// and both ends' blocks when the frame closed one.
    mutating func exchange(transmittance: Double, pulses: UInt32, darkCountProbability: Double? = nil) throws
        -> (announcement: SiftAnnouncement, reply: SiftReply, blocks: (alice: SiftedBlock, bob: SiftedBlock)?)
    {
        let frame = try QuantumFrame.decode(alice.nextFrame(transmittance: transmittance, pulses: pulses,
                                                            darkCountProbability: darkCountProbability).encoded())
        let announcement = try SiftAnnouncement.decode(bob.received(frame).encoded())
        let reply = try SiftReply.decode(alice.received(announcement).encoded())
        guard let reveal = try bob.received(reply) else { return (announcement, reply, nil) }
        let (result, aliceBlock) = try alice.received(EstimationReveal.decode(reveal.encoded()))
        let bobBlock = try bob.received(EstimationResult.decode(result.encoded()))
        return (announcement, reply, (aliceBlock, bobBlock))
    }

    /// Every key either end committed exists, identical, at the other end.
    static func identical(_ alice: [DistilledKey], _ bob: [DistilledKey]) -> Bool {
        let bobByID = Dictionary(bob.map { ($0.id, $0.bits.bits) }, uniquingKeysWith: { a, _ in a })
        return alice.count == bob.count && alice.allSatisfy { bobByID[$0.id] == $0.bits.bits }
    }
}

extension BB84Sender {
    /// The same sender with another block-size threshold (used to close the final block).
    func withBlockSize(_ bits: Int) -> BB84Sender {
        var copy = self
        copy.overrideBlockSize(bits)
        return copy
    }
}
