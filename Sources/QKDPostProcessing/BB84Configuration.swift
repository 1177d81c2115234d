import QKDCore
import QKDPhysics

/// How a link runs efficient BB84 (biased bases, key from X, every Z bit revealed for
/// estimation: Lo, Chau, Ardehali 2005; Lim et al. 2014): frame and block sizes.
public struct BB84Configuration: Sendable, Equatable {
    /// Pulses per quantum frame (one sifting round).
    public var pulsesPerFrame: UInt32
    /// Closed blocks still waiting for the other end's estimation message after this many
    /// newer blocks closed are given up (the message was lost or refused).
    public static let closingHorizon: UInt64 = 8
    /// A block closes once it holds at least this many sifted key-basis (X) bits, all
    /// intensities.
    public var blockKeyBits: Int
    /// When set, a block closes instead once it holds at least this many pulses (the N of
    /// Lim et al.'s block: parameter estimation and privacy amplification over N pulses),
    /// whatever its key bits, up to `maxBlockKeyBits`.
    public var blockPulses: UInt64?
    /// The most key bits a block may hold (what one Cascade run and the wire carry): a block of
    /// `blockPulses` that reaches it closes early, with fewer pulses.
    public static let maxBlockKeyBits = 1 << 26
    public var source: SourceSettings
    /// Y0 of the receiver's detectors: the emulated channel marks where they click by
    /// themselves (`WeakCoherentSource.emit`); 0: none. `LinkSimulation` and the link engine
    /// set it from the link's physics.
    public var darkCountProbability: Double
    /// Frames awaiting their sifting answer; older ones are discarded (their round is lost).
    public var maxPendingFrames: Int

    public init(pulsesPerFrame: UInt32 = 10_000_000, blockKeyBits: Int = 1 << 20, blockPulses: UInt64? = nil,
                source: SourceSettings, darkCountProbability: Double = 0, maxPendingFrames: Int = 64) {
        self.pulsesPerFrame = pulsesPerFrame
        self.blockKeyBits = blockKeyBits
        self.blockPulses = blockPulses
        self.source = source
        self.darkCountProbability = darkCountProbability
        self.maxPendingFrames = maxPendingFrames
    }
}

/// The sifted entries of a block being filled, as one end holds them: class, basis and own bit.
struct BlockAccumulator: Sendable {
    let index: UInt64
    var classes: [UInt8] = []
    var bases: [UInt8] = []
    var bits: [UInt8] = []
    var statistics = BlockStatistics()
    /// Sifted key-basis (X) bits so far.
    var keyBits = 0
    /// The round's transcript hash, running over the block's classical messages (the
    /// distiller goes on absorbing into it: one level, no digest hashed again).
    var transcript: TranscriptHash

    init(index: UInt64, authenticationKey: UInt128) {
        self.index = index
        transcript = TranscriptHash(key: authenticationKey)
    }

    /// Pulses sent in the block's frames so far.
    var pulses: UInt64 { statistics.pulses.reduce(0, +) }

    /// Whether the block is full under `configuration`: N pulses when `blockPulses` is set,
    /// `blockKeyBits` key bits otherwise, and never beyond `maxBlockKeyBits`.
    func isFull(_ configuration: BB84Configuration) -> Bool {
        if keyBits >= BB84Configuration.maxBlockKeyBits { return true }
        if let n = configuration.blockPulses { return pulses >= n }
        return keyBits >= configuration.blockKeyBits
    }

    mutating func add(frameCounts: [UInt64]) {
        for c in 0..<3 { statistics.pulses[c] += frameCounts[c] }
    }

    /// A click; when both ends chose the same `basis`, a sifted entry.
    mutating func click(class c: UInt8, matched: Bool, basis: UInt8, bit: UInt8) {
        statistics.clicks[Int(c)] += 1
        guard matched else { return }
        statistics.sifted[Int(c)] += 1
        classes.append(c)
        bases.append(basis)
        bits.append(bit)
        if basis == Basis.x.rawValue { keyBits += 1 }
    }

    /// Which entries are revealed: every sifted bit of the test basis Z, all intensities (no
    /// sample: efficient BB84 tests on a basis of its own). Both ends know the bases.
    func revealed() -> [Bool] { bases.map { $0 == Basis.z.rawValue } }
}
