import QKDCore
import QKDPhysics
import QKDWire

/// Bob's end of BB84 over one link, as a pure instance: it measures frames, announces its
/// clicks and bases, keeps the sifted bits, and reveals the estimation sample.
public struct BB84Receiver: Sendable {
    public let configuration: BB84Configuration
    private var detector: ThresholdDetector
    private var pending: [UInt64: (detections: DetectionBatch, pulses: UInt32)] = [:]
    private var block: BlockAccumulator
    private var closing: [UInt64: (BlockAccumulator, [Bool], [UInt8])] = [:]
    public private(set) var framesExpired = 0
    /// Times Bob's block numbering differed from Alice's (a reply lost or altered on the way)
    /// and he took hers, dropping the block he was filling.
    public private(set) var blocksResynchronised = 0
    let authenticationKey: UInt128

    /// `seeds` is this link's seed tree; Bob's streams are `bob/*`. `authenticationKey` is the
    /// link's secret key of the transcript hash (both ends use the same).
    public init(configuration: BB84Configuration, seeds: SeedTree, misalignment: Double, darkCountProbability: Double,
                authenticationKey: UInt128 = 1) {
        self.configuration = configuration
        self.authenticationKey = authenticationKey
        detector = ThresholdDetector(misalignment: misalignment, darkCountProbability: darkCountProbability,
                                     bases: PulseHash(seed: seeds.seed(for: "bob/bases")), rng: seeds.stream("bob/detector"),
                                     xProbability: configuration.source.xProbability)
        block = BlockAccumulator(index: 0, authenticationKey: authenticationKey)
    }

    /// Measures a frame and announces where it clicked and in which basis.
    public mutating func received(_ frame: QuantumFrame) throws(ProtocolError) -> SiftAnnouncement {
        guard frame.pulses > 0, frame.photons.count == frame.offsets.count, frame.states.count == frame.offsets.count else {
            throw ProtocolError(.lengthMismatch, "quantum frame \(frame.frameIndex) is inconsistent")
        }
        let arrivals = ArrivalBatch(offsets: frame.offsets, photons: frame.photons, states: frame.states)
        let detections = detector.detect(frameStart: frame.frameStart, pulses: frame.pulses, arrivals: arrivals)
        pending[frame.frameIndex] = (detections, frame.pulses)
        if pending.count > configuration.maxPendingFrames, let oldest = pending.keys.min() {
            pending[oldest] = nil
            framesExpired += 1
        }
        return SiftAnnouncement(frameIndex: frame.frameIndex, offsets: detections.offsets, bases: detections.bases)
    }

    /// Keeps the bits of matching bases; when the block closes, returns the reveal.
    public mutating func received(_ reply: SiftReply) throws(ProtocolError) -> EstimationReveal? {
        guard let (detections, pulses) = pending.removeValue(forKey: reply.frameIndex) else {
            throw ProtocolError(.unknownRound, "sift reply for frame \(reply.frameIndex), which is not awaiting one")
        }
        guard reply.matches.count == detections.count, reply.classes.count == detections.count else {
            throw ProtocolError(.lengthMismatch, "frame \(reply.frameIndex): reply covers \(reply.matches.count) clicks, \(detections.count) were announced")
        }
        guard reply.classCounts.count == 3, reply.classCounts.reduce(0, +) == UInt64(pulses) else {
            throw ProtocolError(.invalidValue, "frame \(reply.frameIndex): class counts do not add up to the frame's pulses")
        }
        if reply.blockIndex != block.index {
            // Alice numbers the blocks. Bob's current block was cut where she did not cut it
            // (a block flag altered or lost): it cannot match hers, so it is dropped, as is any
            // block he closed at or beyond her index (his reveals for them are refused).
            blocksResynchronised += 1
            closing = closing.filter { $0.key < reply.blockIndex }
            block = BlockAccumulator(index: reply.blockIndex, authenticationKey: authenticationKey)
        }
        block.add(frameCounts: reply.classCounts)
        for i in 0..<detections.count {
            block.click(class: reply.classes[i], matched: reply.matches[i] == 1, basis: detections.bases[i], bit: detections.bits[i])
        }
        block.transcript.update(SiftAnnouncement(frameIndex: reply.frameIndex, offsets: detections.offsets, bases: detections.bases).encoded())
        block.transcript.update(reply.encoded())
        guard reply.closesBlock else { return nil }
        let revealed = block.revealed()
        var bits: [UInt8] = []
        for i in revealed.indices where revealed[i] { bits.append(block.bits[i]) }
        let reveal = EstimationReveal(blockIndex: block.index, bits: bits)
        closing = closing.filter { $0.key + BB84Configuration.closingHorizon > block.index }
        closing[block.index] = (block, revealed, reveal.encoded())
        block = BlockAccumulator(index: block.index + 1, authenticationKey: authenticationKey)
        return reveal
    }

    /// Finishes a block with Alice's statistics and returns Bob's sifted block.
    public mutating func received(_ result: EstimationResult) throws(ProtocolError) -> SiftedBlock {
        guard let (acc, revealed, revealBytes) = closing.removeValue(forKey: result.blockIndex) else {
            throw ProtocolError(.unknownRound, "estimation result for block \(result.blockIndex), which is not closing")
        }
        guard result.pulses == acc.statistics.pulses, result.clicks == acc.statistics.clicks, result.sifted == acc.statistics.sifted else {
            throw ProtocolError(.invalidValue, "block \(result.blockIndex): statistics disagree with this end's counts")
        }
        var key = BitVector()
        var revealedCounts: [UInt64] = [0, 0, 0]
        for i in acc.classes.indices {
            if revealed[i] { revealedCounts[Int(acc.classes[i])] += 1 } else { key.append(acc.bits[i]) }
        }
        guard revealedCounts == result.revealed else {
            throw ProtocolError(.invalidValue, "block \(result.blockIndex): revealed counts disagree")
        }
        var stats = acc.statistics
        stats.revealed = result.revealed
        stats.errors = result.errors
        var transcript = acc.transcript
        transcript.update(revealBytes)
        transcript.update(result.encoded())
        return SiftedBlock(index: result.blockIndex, key: BitVectorBox(key), statistics: stats, transcript: transcript)
    }
}
