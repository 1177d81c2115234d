import QKDCore
import QKDKeyPool
import QKDPhysics
import QKDWire
#if canImport(Glibc)
import Glibc
#endif

/// Settings of key distillation.
public struct DistillerConfiguration: Sendable, Equatable {
    /// Bits per key deposited in the pool.
    public var keyBits: Int = 256
    /// Bits subtracted from every privacy-amplified block beyond the estimated leakage:
    /// 2 log2(1/ε_PA) for ε_PA = 2^-32 per block by default (leftover hash lemma), plus slack.
    public var securityMarginBits: Int = 128
    /// Keys of the emulated pre-shared secret a new link starts with (its first authentication
    /// pads, `keyBits` each).
    public var preSharedKeys: Int = 256
    public var source: SourceSettings
    public var ecEfficiency: Double
    public var standardDeviations: Double = 5
    /// A block whose measured QBER (signal pulses) is above this yields no key and marks the
    /// link compromised: 11 %, the one-way BB84 limit (Shor, Preskill, PRL 85, 441, 2000).
    public var abortQBER: Double = 0.11

    public init(source: SourceSettings, ecEfficiency: Double) {
        self.source = source
        self.ecEfficiency = ecEfficiency
    }
}

/// A key that came out of distillation: its ID (the same at both ends) and bits.
/// `description` never shows the bits.
public struct DistilledKey: Sendable, CustomStringConvertible {
    public let id: KeyID
    public let bits: BitVectorBox

    public var description: String { "key \(id) (\(bits.count) bits)" }
}

/// One end's key distillation for one link, as a pure instance: for every sifted block,
/// Cascade (Bob asks, Alice answers), verification by a universal hash, Wegman–Carter
/// authentication of the round's transcript (estimation, every Cascade message, the
/// verification), and Toeplitz privacy amplification to the length GLLP allows.
///
/// Final length (per block of n sifted signal bits, GLLP with the block's decoy bounds and
/// the bits actually disclosed): m = ⌊n (Q1_L/Q_μ)(1 − H2(e1_U)) − leak_EC − leak_verify −
/// margin⌋, where Q1_L/Q_μ lower-bounds the single-photon fraction of the sifted signal bits
/// (Gottesman, Lo, Lütkenhaus, Preskill 2004; Lo, Ma, Chen 2005) and the estimates use
/// statistical-fluctuation bounds. This is the asymptotic key rate with finite-statistics
/// bounds on the estimates and a fixed privacy-amplification margin, not a full composable
/// finite-key analysis (docs/physics.md).
public struct KeyDistiller: Sendable {
    public enum Role: Sendable { case alice, bob }

    public enum Output: Sendable {
        case send(MessageKind, [UInt8])
        /// The round's keys are now available in the pool at this end (both ends stored them).
        case committed(block: UInt64, [KeyID])
        case log(String, [String: String])
        /// Parameter estimation of a block is over: `abortReason` nil means the block goes on
        /// to Cascade; otherwise it yields no key and the link is to be marked compromised.
        case estimated(block: UInt64, abortReason: String?)
    }

    public struct Counters: Sendable, Equatable {
        public init() {}
        public var blocksDistilled: UInt64 = 0
        public var blocksFailedVerification: UInt64 = 0
        public var blocksFailedAuthentication: UInt64 = 0
        public var blocksWithoutKey: UInt64 = 0
        public var leakedBits: UInt64 = 0
        public var reconciledBits: UInt64 = 0
        /// Σ n·H2(QBER) over reconciled blocks, for the efficiency f = leaked / Σ n·H2.
        public var shannonBits: Double = 0
        public var finalBits: UInt64 = 0
        /// Distillation messages refused (malformed, out of place, or not matching the round).
        public var messagesRejected: UInt64 = 0
        /// Rounds abandoned because the peer stopped answering.
        public var roundsAbandoned: UInt64 = 0
        /// Rounds distilled at this end but never acknowledged by the peer (dropped).
        public var blocksUnconfirmed: UInt64 = 0
        /// Keys released to the pool.
        public var keysCommitted: UInt64 = 0
        /// Blocks refused at parameter estimation (`abortReason`): no Cascade, no key.
        public var roundsAborted: UInt64 = 0
        /// The newest block that put keys into the pool at this end.
        public var lastKeyBlock: UInt64?
        /// Rounds whose authentication key was missing from the pool (tagging end: none left;
        /// verifying end: the named key is not held here).
        public var authenticationKeysMissing: UInt64 = 0
        public var ecEfficiency: Double? { shannonBits > 0 ? Double(leakedBits) / shannonBits : nil }
    }

    struct Round: Sendable {
        var block: SiftedBlock
        var estimates: Estimates
        var transcript: PolynomialHash
        var alice: CascadeAlice?
        var bob: CascadeBob?
        var done: ReconciliationDone?
        var pads: (UInt64, UInt64)?
        /// Bob, once Cascade is over: his corrected key, the leak and the corrections (the
        /// Cascade state itself is released).
        var corrected: BitVector?
        var leaked = 0
        var corrections = 0
    }

    public let role: Role
    public let configuration: DistillerConfiguration
    let seeds: SeedTree
    let authenticationKey: UInt64

    /// The link's long-term authentication key K, from its seed tree (the emulated
    /// pre-shared secret); the BB84 instances hash their messages under the same K.
    public static func authenticationKey(linkSeeds: SeedTree) -> UInt64 { linkSeeds.seed(for: "auth-key") }
    private var permutations: CascadePermutations
    private var rounds: [UInt64: Round] = [:]
    /// Rounds whose keys are stored as pending in the pool: they become available only once
    /// the peer acknowledged the round (two-phase, by rolling acknowledgement), so a round
    /// that either end rejects leaves no usable key at either end.
    private var held: [UInt64: [KeyID]] = [:]
    /// Bob: results accepted since his last `Done`. Alice: acknowledgements received since
    /// her last `Result`.
    private var toAnnounce: [UInt64] = []
    /// Held rounds older than this many blocks behind the newest are given up.
    public static let holdingHorizon: UInt64 = 16
    /// Unfinished rounds older than this many blocks behind the newest are abandoned (the
    /// peer stopped answering them); callers throttle far below this (`unfinishedRounds`).
    public static let roundHorizon: UInt64 = 256

    /// Rounds sifted here and not finished yet: the distillation backlog, which the quantum
    /// layer uses to throttle itself.
    public var unfinishedRounds: Int { rounds.count }
    public private(set) var counters = Counters()

    /// `linkSeeds` is the link's seed tree (the same at both ends); `session` separates
    /// sessions so that a restarted link never reuses permutations or key IDs.
    public init(role: Role, configuration: DistillerConfiguration, linkSeeds: SeedTree, session: UInt64) {
        self.role = role
        self.configuration = configuration
        seeds = linkSeeds.child("distill/\(session)")
        authenticationKey = KeyDistiller.authenticationKey(linkSeeds: linkSeeds)
        permutations = CascadePermutations(seeds: linkSeeds.child("cascade"))
    }

    /// The emulated pre-shared secret of a new link, as keys for its pool (the same at both
    /// ends): the first Wegman–Carter pads, until distilled key replaces them.
    public static func preSharedKeys(linkSeeds: SeedTree, configuration: DistillerConfiguration) -> [(id: KeyID, bits: BitVector)] {
        var stream = linkSeeds.stream("psk")
        let words = (configuration.keyBits + 63) / 64
        return (0..<configuration.preSharedKeys).map { _ in
            let id = KeyID(randomHigh: stream.next(), randomLow: stream.next())
            return (id, BitVector(words: (0..<words).map { _ in stream.next() }, count: configuration.keyBits))
        }
    }

    /// Why a block's estimates forbid any key, or nil when they allow distillation: the
    /// measured QBER is above `threshold`, or (decoy states) the decoy analysis certifies no
    /// single-photon key: Y1_L ≤ 0 or e1_U ≥ 1/2, so Q1_L (1 − H2(e1_U)) ≤ 0 (Lo, Ma, Chen, PRL
    /// 94, 230504, 2005, Eq. 1; the bounds of `BlockStatistics.estimates`). Both ends hold the
    /// same statistics, so both reach the same verdict without a message. A photon-number
    /// splitting attack that blocks single-photon pulses keeps the QBER low but lowers the
    /// decoy gain below what Y1 > 0 allows; intercept-resend raises the QBER by a quarter of the
    /// fraction of pulses it measures.
    public static func abortReason(_ e: Estimates, qberThreshold threshold: Double) -> String? {
        if e.qberSignal > threshold {
            return "QBER \(KeyDistiller.percent(e.qberSignal)) is above the abort threshold \(KeyDistiller.percent(threshold))"
        }
        if e.decoyStates && (e.y1Lower <= 0 || e.e1Upper >= 0.5) {
            return "decoy analysis certifies no single-photon key (Y1_L \(e.y1Lower), e1_U \(e.e1Upper))"
        }
        return nil
    }

    static func percent(_ x: Double) -> String { "\((x * 10_000).rounded() / 100) %" }

    /// Rounds this many blocks older than one that just finished are stuck: a message of theirs
    /// was lost or refused (one link's messages arrive in order, and the source stops at 4
    /// unfinished rounds, so twice that is never a slow round).
    public static let staleRounds: UInt64 = 8

    /// Abandons the rounds `staleRounds` or more blocks older than `finished`.
    private mutating func abandonStale(finished: UInt64) {
        for block in rounds.keys where block + KeyDistiller.staleRounds <= finished { abandon(block) }
    }

    /// Gives up an unfinished round (its peer never answered, or a message of it was refused
    /// before it could be matched to the round): nothing of it is kept. True if it was open.
    @discardableResult
    public mutating func abandon(_ block: UInt64) -> Bool {
        guard rounds.removeValue(forKey: block) != nil else { return false }
        counters.roundsAbandoned += 1
        return true
    }

    /// Takes this end's sifted block. Bob starts Cascade at once; Alice waits for Bob. A block
    /// that fails parameter estimation (`abortReason`) is dropped here, at both ends.
    public mutating func sifted(_ block: SiftedBlock) -> [Output] {
        let estimates = block.statistics.estimates(source: configuration.source, ecEfficiency: configuration.ecEfficiency,
                                                   standardDeviations: configuration.standardDeviations)
        if let reason = KeyDistiller.abortReason(estimates, qberThreshold: configuration.abortQBER) {
            counters.roundsAborted += 1
            return [.estimated(block: block.index, abortReason: reason)]
        }
        var transcript = PolynomialHash(key: authenticationKey)
        transcript.update(bits: block.index, count: 56)
        // Every sifting and estimation message of the block, through its digest.
        KeyDistiller.absorb(&transcript, hash: block.transcriptDigest, list: [])
        for array in [block.statistics.pulses, block.statistics.clicks, block.statistics.sifted,
                      block.statistics.revealed, block.statistics.errors] {
            for v in array { transcript.update(bits: v & 0x00FF_FFFF_FFFF_FFFF, count: 56) }
        }
        for old in rounds.keys where old + KeyDistiller.roundHorizon < block.index {
            rounds[old] = nil
            counters.roundsAbandoned += 1
        }
        var round = Round(block: block, estimates: estimates, transcript: transcript)
        let layout = CascadeLayout(length: block.key.count, qber: max(estimates.qberSignal, 1e-4), permutations: &permutations,
                                   withInverses: role == .bob)
        switch role {
        case .alice:
            round.alice = CascadeAlice(block: block.index, key: block.key.bits, layout: layout)
            rounds[block.index] = round
            return [.estimated(block: block.index, abortReason: nil)]
        case .bob:
            var bob = CascadeBob(block: block.index, key: block.key.bits, layout: layout)
            let request = bob.start()
            round.bob = bob
            let bytes = request.encoded()
            round.transcript.update(bytes)
            rounds[block.index] = round
            return [.estimated(block: block.index, abortReason: nil), .send(.cascadeRequest, bytes)]
        }
    }

    /// Handles a distillation message from the peer. A message that does not fit discards
    /// its round.
    /// `pool` is this end's key pool of the link: authentication keys come from it, distilled
    /// keys go into it (pending, then available once the peer acknowledged the round).
    public mutating func received(_ kind: MessageKind, _ payload: [UInt8], pool: inout KeyPool) -> [Output] {
        do {
            switch (role, kind) {
            case (.alice, .cascadeRequest): return try aliceAnswer(CascadeRequest.decode(payload), raw: payload)
            case (.bob, .cascadeReply): return try bobContinue(CascadeReply.decode(payload), raw: payload, pool: &pool)
            case (.alice, .reconciliationDone): return try aliceVerify(ReconciliationDone.decode(payload), pool: &pool)
            case (.bob, .reconciliationResult): return try bobFinish(ReconciliationResult.decode(payload), pool: &pool)
            default:
                counters.messagesRejected += 1
                return [.log("distillation message not expected", ["kind": "\(kind)"])]
            }
        } catch {
            counters.messagesRejected += 1
            return [.log("distillation message rejected", ["reason": "\(error)"])]
        }
    }

    private mutating func aliceAnswer(_ request: CascadeRequest, raw: [UInt8]) throws -> [Output] {
        guard var round = rounds[request.block], var alice = round.alice else {
            throw ProtocolError(.unknownRound, "cascade request for block \(request.block), which is not waiting")
        }
        let reply = try alice.answer(request)
        let bytes = reply.encoded()
        round.transcript.update(raw)
        round.transcript.update(bytes)
        round.alice = alice
        rounds[request.block] = round
        return [.send(.cascadeReply, bytes)]
    }

    private mutating func bobContinue(_ reply: CascadeReply, raw: [UInt8], pool: inout KeyPool) throws -> [Output] {
        guard var round = rounds[reply.block], var bob = round.bob else {
            throw ProtocolError(.unknownRound, "cascade reply for block \(reply.block), which is not running")
        }
        round.transcript.update(raw)
        let next = try bob.received(reply)
        round.bob = bob
        if let next {
            let bytes = next.encoded()
            round.transcript.update(bytes)
            rounds[reply.block] = round
            return [.send(.cascadeRequest, bytes)]
        }
        // Cascade is over: verification hash and Bob's tag, padded with the oldest key of the pool.
        guard let (authKey, padBits) = pool.takeOldestForAuthentication() else {
            rounds[reply.block] = nil
            counters.authenticationKeysMissing += 1
            return [.log("no authentication key left in the pool: block discarded", ["block": "\(reply.block)"])]
        }
        let (pad1, pad2) = KeyDistiller.pads(padBits)
        let hash = PolynomialHash.hash(bob.key, key: seeds.seed(for: "verify/\(reply.block)"))
        let acks = toAnnounce
        toAnnounce = []
        var t = round.transcript
        KeyDistiller.absorb(&t, hash: hash, list: acks)
        let done = ReconciliationDone(block: reply.block, verificationHash: hash, authenticationKey: authKey,
                                      acknowledged: acks, tag: WegmanCarter.tag(t.finalize(), pad: pad1))
        round.transcript = t
        round.done = done
        round.pads = (pad1, pad2)
        round.corrected = bob.key
        round.leaked = bob.leakedBits
        round.corrections = bob.corrections
        round.bob = nil
        rounds[reply.block] = round
        return [.send(.reconciliationDone, done.encoded())]
    }

    private mutating func aliceVerify(_ done: ReconciliationDone, pool: inout KeyPool) throws -> [Output] {
        guard var round = rounds.removeValue(forKey: done.block), let alice = round.alice else {
            // Bob spent the authentication key he named on this round; spend it here too, or the
            // two pools would differ by that key (a round abandoned here while Bob finished it).
            _ = pool.takeForAuthentication(done.authenticationKey)
            throw ProtocolError(.unknownRound, "reconciliation done for block \(done.block), which is not waiting")
        }
        abandonStale(finished: done.block)
        // The key Bob named is taken here too (whatever the outcome: it was used once).
        guard let padBits = pool.takeForAuthentication(done.authenticationKey) else {
            counters.blocksFailedAuthentication += 1
            counters.authenticationKeysMissing += 1
            return [.log("authentication key named by the peer is not held here: block discarded",
                         ["block": "\(done.block)", "key.id": "\(done.authenticationKey)"])]
        }
        let (pad1, pad2) = KeyDistiller.pads(padBits)
        var t = round.transcript
        KeyDistiller.absorb(&t, hash: done.verificationHash, list: done.acknowledged)
        let tagValid = WegmanCarter.tag(t.finalize(), pad: pad1) == done.tag
        var out: [Output] = []
        if tagValid {
            // Bob accepted these rounds: commit them here, and tell him so.
            for a in done.acknowledged { out += commit(a, pool: &pool) }
            toAnnounce += done.acknowledged
        }
        let mine = PolynomialHash.hash(round.block.key.bits, key: seeds.seed(for: "verify/\(done.block)"))
        let hashesEqual = mine == done.verificationHash
        var finalBits = 0
        if !tagValid {
            counters.blocksFailedAuthentication += 1
            out.append(.log("authentication failed: block discarded", ["block": "\(done.block)"]))
        } else if !hashesEqual {
            counters.blocksFailedVerification += 1
            out.append(.log("verification failed: block discarded", ["block": "\(done.block)"]))
        } else {
            finalBits = finalLength(round, leaked: alice.leakedBits)
        }
        let accepted = tagValid && hashesEqual
        let confirmations = tagValid ? toAnnounce : []
        if tagValid { toAnnounce = [] }
        t.update(bits: accepted ? 1 : 0, count: 1)
        t.update(bits: UInt64(finalBits), count: 32)
        KeyDistiller.absorb(&t, list: confirmations)
        let result = ReconciliationResult(block: done.block, accepted: accepted, finalBits: UInt32(finalBits),
                                          confirmed: confirmations, tag: WegmanCarter.tag(t.finalize(), pad: pad2))
        out.insert(.send(.reconciliationResult, result.encoded()), at: 0)
        if accepted {
            round.transcript = t
            out += deposit(round, leaked: alice.leakedBits, finalBits: finalBits, corrected: round.block.key.bits, pool: &pool)
        }
        return out
    }

    private mutating func bobFinish(_ result: ReconciliationResult, pool: inout KeyPool) throws -> [Output] {
        guard let round = rounds.removeValue(forKey: result.block), let corrected = round.corrected, let (_, pad2) = round.pads else {
            throw ProtocolError(.unknownRound, "reconciliation result for block \(result.block), which is not waiting")
        }
        abandonStale(finished: result.block)
        var t = round.transcript
        t.update(bits: result.accepted ? 1 : 0, count: 1)
        t.update(bits: UInt64(result.finalBits), count: 32)
        KeyDistiller.absorb(&t, list: result.confirmed)
        guard WegmanCarter.tag(t.finalize(), pad: pad2) == result.tag else {
            counters.blocksFailedAuthentication += 1
            return [.log("authentication failed: block discarded", ["block": "\(result.block)"])]
        }
        // Alice committed these: commit them here too.
        var out: [Output] = []
        for c in result.confirmed { out += commit(c, pool: &pool) }
        guard result.accepted else {
            counters.blocksFailedVerification += 1
            return out + [.log("peer rejected the block", ["block": "\(result.block)"])]
        }
        // Bob computes the same length; a disagreement means the peer is not following the protocol.
        let expected = finalLength(round, leaked: round.leaked)
        guard expected == Int(result.finalBits) else {
            counters.blocksFailedVerification += 1
            return out + [.log("final length disagrees: block discarded", ["block": "\(result.block)"])]
        }
        toAnnounce.append(result.block)
        return out + deposit(round, leaked: round.leaked, finalBits: expected, corrected: corrected, pool: &pool)
    }

    /// Folds a verification hash and a list of block numbers into a transcript.
    static func absorb(_ t: inout PolynomialHash, hash: UInt64? = nil, list: [UInt64]) {
        if let hash {
            t.update(bits: hash & 0x00FF_FFFF_FFFF_FFFF, count: 56)
            t.update(bits: hash >> 56, count: 8)
        }
        t.update(bits: UInt64(list.count), count: 32)
        for v in list {
            t.update(bits: v & 0x00FF_FFFF_FFFF_FFFF, count: 56)
            t.update(bits: v >> 56, count: 8)
        }
    }

    /// Two 64-bit Wegman–Carter pads from the first 128 bits of an authentication key.
    static func pads(_ key: BitVector) -> (UInt64, UInt64) {
        (key.words.count > 0 ? key.words[0] : 0, key.words.count > 1 ? key.words[1] : 0)
    }

    /// Releases a held round's keys: pending → available in the pool.
    private mutating func commit(_ block: UInt64, pool: inout KeyPool) -> [Output] {
        guard let ids = held.removeValue(forKey: block) else { return [] }
        pool.confirm(ids)
        counters.keysCommitted += UInt64(ids.count)
        return [.committed(block: block, ids)]
    }

    /// Gives up held rounds far behind `newest` (the peer never acknowledged them): their
    /// pending keys are discarded.
    private mutating func expireHeld(newest: UInt64, pool: inout KeyPool) {
        for block in held.keys where block + KeyDistiller.holdingHorizon < newest {
            pool.discardPending(held[block]!)
            held[block] = nil
            counters.blocksUnconfirmed += 1
        }
    }

    /// m = ⌊n (Q1_L/Q_μ)(1 − H2(e1_U)) − leak_EC − leak_verify − margin⌋ (0 if negative).
    func finalLength(_ round: Round, leaked: Int) -> Int {
        let e = round.estimates
        let n = Double(round.block.key.count)
        let singlePhotonFraction = e.gainSignal > 0 ? min(1, e.singlePhotonGainLower / e.gainSignal) : 0
        let secret = n * singlePhotonFraction * (1 - binaryEntropy(min(0.5, e.e1Upper)))
        let m = secret - Double(leaked) - 64 - Double(configuration.securityMarginBits)
        return m.isFinite ? max(0, min(round.block.key.count, Int(m.rounded(.down)))) : 0
    }

    private mutating func deposit(_ round: Round, leaked: Int, finalBits m: Int, corrected: BitVector, pool: inout KeyPool) -> [Output] {
        let n = round.block.key.count
        counters.blocksDistilled += 1
        counters.leakedBits += UInt64(leaked)
        counters.reconciledBits += UInt64(n)
        // Bob knows the errors he corrected; Alice only the estimate.
        let qber = round.corrected != nil ? Double(round.corrections) / Double(max(1, n)) : round.estimates.qberSignal
        if qber > 0 { counters.shannonBits += Double(n) * binaryEntropy(qber) }
        guard m > 0 else {
            counters.blocksWithoutKey += 1
            return [.log("block yields no secret key", ["block": "\(round.block.index)"])]
        }
        var paSeed = seeds.stream("pa/\(round.block.index)")
        let seedWords = (0..<(n + m - 1 + 63) / 64).map { _ in paSeed.next() }
        let final = ToeplitzHash.apply(seed: BitVector(words: seedWords, count: n + m - 1), input: corrected, outputBits: m)
        counters.finalBits += UInt64(m)
        var keys: [(id: KeyID, bits: BitVector)] = []
        let ids = PulseHash(seed: seeds.seed(for: "key-ids/\(round.block.index)"))
        var offset = 0
        var ordinal: UInt64 = 0
        while offset + configuration.keyBits <= final.count {
            keys.append((KeyID(randomHigh: ids.word(2 * ordinal), randomLow: ids.word(2 * ordinal + 1)),
                         final.slice(from: offset, length: configuration.keyBits)))
            offset += configuration.keyBits
            ordinal += 1
        }
        // Stored as pending here before anything acknowledges the round (the shell makes the
        // pool's journal durable before it sends this step's messages).
        do {
            try pool.deposit(keys, pending: true)
        } catch {
            return [.log("distilled keys refused by the pool: block discarded", ["block": "\(round.block.index)", "reason": "\(error)"])]
        }
        held[round.block.index] = keys.map(\.id)
        counters.lastKeyBlock = max(counters.lastKeyBlock ?? 0, round.block.index)
        expireHeld(newest: round.block.index, pool: &pool)
        return [.log("block distilled", ["block": "\(round.block.index)", "final_bits": "\(m)", "keys": "\(keys.count)",
                                         "leaked_bits": "\(leaked)"])]
    }
}
