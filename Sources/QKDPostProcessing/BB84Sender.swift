import QKDCore
import QKDPhysics
import QKDWire

/// Alice's end of BB84 over one link, as a pure instance: it emits frames, answers Bob's
/// sifting announcements, and closes blocks with an estimation. It never learns Bob's bits
/// except those revealed for estimation.
public struct BB84Sender: Sendable {
    public private(set) var configuration: BB84Configuration
    private var source: WeakCoherentSource
    /// For clicks on pulses that were no entry of their frame (`EmissionRecord.pulses(at:)`).
    private var spareValues: SecretRandom
    public private(set) var nextFrameIndex: UInt64 = 0
    private var nextPulse: UInt64 = 0
    private var pending: [UInt64: EmissionRecord] = [:]
    private var block: BlockAccumulator
    private var closing: [UInt64: BlockAccumulator] = [:]
    /// Frames dropped because no sifting answer came in time.
    public private(set) var framesExpired = 0
    private var closingFrame: UInt64?
    let authenticationKey: UInt128

    /// `seeds` is this link's seed tree; Alice's streams are `alice/*` (physics always; her bit
    /// values too when `secrecy` is reproducible, the OS CSPRNG
    /// otherwise). `authenticationKey` is the link's secret key of the transcript hash (both
    /// ends use the same).
    public init(configuration: BB84Configuration, seeds: SeedTree, secrecy: Secrecy, authenticationKey: UInt128 = 1) {
        self.configuration = configuration
        self.authenticationKey = authenticationKey
        source = WeakCoherentSource(settings: configuration.source, choices: PulseHash(seed: seeds.seed(for: "alice/choices")),
                                    rng: seeds.stream("alice/source"),
                                    values: .make(secrecy, seeds: seeds, label: "alice/values"))
        spareValues = .make(secrecy, seeds: seeds, label: "alice/spare-values")
        block = BlockAccumulator(index: 0, authenticationKey: authenticationKey)
    }

    public var pendingFrames: Int { pending.count }

    /// Starts frame numbering at `index` (a new session's base) without emitting anything.
    public mutating func skipFrames(to index: UInt64) { nextFrameIndex = index }

    /// Closes the block with the sifting answer to frame `index` (or a later one, should that
    /// frame's never come): a satellite pass's last frame, since one pass is one block.
    public mutating func closeBlock(atFrame index: UInt64) { closingFrame = index }

    /// Changes the block threshold from the next sifting answer on (both ends follow Alice's
    /// block flags, so only Alice needs it).
    public mutating func overrideBlockSize(_ bits: Int) { configuration.blockKeyBits = bits }

    /// Emits the next frame into a channel of transmittance `t` (to the end of the first
    /// segment: Bob's detectors, or an interposer).
    /// `darkCountProbability`: the receiver's vacuum yield for this frame, when it is not the
    /// configuration's (a free-space link's sky background by day or by night).
    public mutating func nextFrame(transmittance t: Double, pulses: UInt32? = nil, darkCountProbability: Double? = nil) -> QuantumFrame {
        let index = nextFrameIndex
        let count = pulses ?? configuration.pulsesPerFrame
        let (arrivals, record) = source.emit(frameStart: nextPulse, pulses: count, transmittance: t,
                                             darkCountProbability: darkCountProbability ?? configuration.darkCountProbability)
        pending[index] = record
        if pending.count > configuration.maxPendingFrames, let oldest = pending.keys.min() {
            pending[oldest] = nil
            framesExpired += 1
        }
        nextFrameIndex += 1
        nextPulse += UInt64(count)
        return QuantumFrame(frameIndex: index, frameStart: record.frameStart, pulses: record.pulses,
                            offsets: arrivals.offsets, photons: arrivals.photons, states: arrivals.states)
    }

    /// Answers Bob's clicks with basis matches and classes. A malformed announcement is
    /// refused and its frame discarded.
    public mutating func received(_ a: SiftAnnouncement) throws(ProtocolError) -> SiftReply {
        guard let record = pending.removeValue(forKey: a.frameIndex) else {
            throw ProtocolError(.unknownRound, "sift announcement for frame \(a.frameIndex), which is not awaiting one")
        }
        guard a.bases.count == a.offsets.count else {
            throw ProtocolError(.lengthMismatch, "frame \(a.frameIndex): \(a.bases.count) bases for \(a.offsets.count) clicks")
        }
        var previous: Int64 = -1
        for o in a.offsets {
            guard Int64(o) > previous, o < record.pulses else {
                throw ProtocolError(.outOfRange, "frame \(a.frameIndex): click offset \(o) out of order or outside \(record.pulses) pulses")
            }
            previous = Int64(o)
        }
        guard a.bases.allSatisfy({ $0 <= 1 }) else { throw ProtocolError(.invalidValue, "frame \(a.frameIndex): basis other than 0 or 1") }
        let mine = record.pulses(at: a.offsets, secrets: &spareValues)
        var matches = [UInt8](repeating: 0, count: a.offsets.count)
        block.add(frameCounts: record.classCounts)
        for i in a.offsets.indices {
            let matched = mine.bases[i] == a.bases[i]
            matches[i] = matched ? 1 : 0
            block.click(class: mine.classes[i], matched: matched, basis: mine.bases[i], bit: mine.values[i])
        }
        let closes = block.isFull(configuration) || closingFrame.map { a.frameIndex >= $0 } == true
        if closes { closingFrame = nil }
        let reply = SiftReply(frameIndex: a.frameIndex, blockIndex: block.index, matches: matches, classes: mine.classes, classCounts: record.classCounts,
                              closesBlock: closes)
        block.transcript.update(a.encoded())
        block.transcript.update(reply.encoded())
        if closes {
            // A block whose reveal never comes (lost, or refused as altered) is given up after
            // `closingHorizon` more blocks.
            closing = closing.filter { $0.key + BB84Configuration.closingHorizon > block.index }
            closing[block.index] = block
            block = BlockAccumulator(index: block.index + 1, authenticationKey: authenticationKey)
        }
        return reply
    }

    /// Compares Bob's revealed bits with Alice's, finishes the block, and returns the result
    /// for Bob with Alice's sifted block (sampled bits removed).
    public mutating func received(_ r: EstimationReveal) throws(ProtocolError) -> (EstimationResult, SiftedBlock) {
        guard let acc = closing.removeValue(forKey: r.blockIndex) else {
            throw ProtocolError(.unknownRound, "estimation reveal for block \(r.blockIndex), which is not closing")
        }
        let revealed = acc.revealed()
        let expected = revealed.reduce(0) { $0 + ($1 ? 1 : 0) }
        guard r.bits.count == expected else {
            throw ProtocolError(.lengthMismatch, "block \(r.blockIndex): \(r.bits.count) revealed bits, expected \(expected)")
        }
        var stats = acc.statistics
        var key = BitVector()
        var j = 0
        for i in acc.classes.indices {
            let c = Int(acc.classes[i])
            if revealed[i] {
                stats.revealed[c] += 1
                if r.bits[j] & 1 != acc.bits[i] { stats.errors[c] += 1 }
                j += 1
            } else {
                key.append(acc.bits[i])
            }
        }
        let result = EstimationResult(blockIndex: r.blockIndex, pulses: stats.pulses, clicks: stats.clicks, sifted: stats.sifted,
                                      revealed: stats.revealed, errors: stats.errors)
        var transcript = acc.transcript
        transcript.update(r.encoded())
        transcript.update(result.encoded())
        return (result, SiftedBlock(index: r.blockIndex, key: BitVectorBox(key), statistics: stats,
                                    transcript: transcript))
    }
}
