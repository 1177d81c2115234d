import QKDPhysics

/// How a link runs BB84: frame and block sizes and the estimation sample.
public struct BB84Configuration: Sendable, Equatable {
    /// Pulses per quantum frame (one sifting round).
    public var pulsesPerFrame: UInt32
    /// Closed blocks still waiting for the other end's estimation message after this many
    /// newer blocks closed are given up (the message was lost or refused).
    public static let closingHorizon: UInt64 = 8
    /// A block closes once it holds at least this many sifted signal bits.
    public var blockSiftedSignalBits: Int
    /// Fraction of sifted signal bits revealed to estimate E_μ (discarded from the key).
    public var sampleFraction: Double
    public var source: SourceSettings
    /// Frames awaiting their sifting answer; older ones are discarded (their round is lost).
    public var maxPendingFrames: Int

    public init(pulsesPerFrame: UInt32 = 10_000_000, blockSiftedSignalBits: Int = 1 << 20, sampleFraction: Double = 0.1,
                source: SourceSettings, maxPendingFrames: Int = 64) {
        self.pulsesPerFrame = pulsesPerFrame
        self.blockSiftedSignalBits = blockSiftedSignalBits
        self.sampleFraction = sampleFraction
        self.source = source
        self.maxPendingFrames = maxPendingFrames
    }
}

/// The sifted entries of a block being filled, as one end holds them: class and own bit.
struct BlockAccumulator: Sendable {
    let index: UInt64
    var classes: [UInt8] = []
    var bits: [UInt8] = []
    var statistics = BlockStatistics()
    var siftedSignal = 0
    /// Running h_K over the block's classical messages.
    var transcript: PolynomialHash

    init(index: UInt64, authenticationKey: UInt64) {
        self.index = index
        transcript = PolynomialHash(key: authenticationKey)
    }

    mutating func add(frameCounts: [UInt64]) {
        for c in 0..<3 { statistics.pulses[c] += frameCounts[c] }
    }

    mutating func click(class c: UInt8, matched: Bool, bit: UInt8) {
        statistics.clicks[Int(c)] += 1
        guard matched else { return }
        statistics.sifted[Int(c)] += 1
        classes.append(c)
        bits.append(bit)
        if c == 0 { siftedSignal += 1 }
    }

    /// Which entries are revealed: every decoy and vacuum entry, and the signal entries whose
    /// ordinal's hash under `seed` falls below `fraction` (both ends derive the same set).
    func revealed(seed: UInt64, fraction: Double) -> [Bool] {
        let hash = PulseHash(seed: seed)
        let threshold = fraction >= 1 ? UInt64.max : UInt64(fraction * 0x1.0p64)
        var out = [Bool](repeating: true, count: classes.count)
        var ordinal: UInt64 = 0
        for i in classes.indices where classes[i] == 0 {
            out[i] = hash.word(ordinal) < threshold
            ordinal += 1
        }
        return out
    }
}
