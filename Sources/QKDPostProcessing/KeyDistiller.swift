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
    public var keyBits: Int = LinkBootstrap.keyBits
    /// Bits subtracted from every privacy-amplified block beyond the estimated leakage by the
    /// asymptotic GLLP formula of a link without decoys (`.gllpWithoutDecoys`):
    /// 2 log2(1/ε_PA) for ε_PA = 2^-32 per block, plus slack.
    public var securityMarginBits: Int = 128
    /// Keys of the emulated pre-shared secret a new link starts with (its first authentication
    /// pads, `keyBits` each).
    public var preSharedKeys: Int = LinkBootstrap.keyCount
    public var source: SourceSettings
    public var ecEfficiency: Double
    public var standardDeviations: Double = 5
    /// A block whose measured QBER (signal pulses) is above this yields no key and marks the
    /// link compromised: 11 %, the one-way BB84 limit (Shor, Preskill, PRL 85, 441, 2000).
    public var abortQBER: Double = 0.11
    /// How a block's final length is bounded.
    public var bound: LengthBound

    /// The key-length bound of privacy amplification.
    public enum LengthBound: Sendable, Equatable {
        /// Lim et al. (2014), composable, with its ε_sec and ε_cor (`finiteSize` true).
        case lim2014(Lim2014.Parameters)
        /// The same decoy bounds without finite-size terms (`finiteSize` false): asymptotic.
        case asymptotic(Lim2014.Parameters)
        /// A link without decoys: GLLP's asymptotic formula with fluctuation bounds and a fixed
        /// margin (`finalLength`).
        case gllpWithoutDecoys

        /// "lim2014", "asymptotic" or "gllp-asymptotic".
        public var name: String {
            switch self {
            case .lim2014: "lim2014"
            case .asymptotic: "asymptotic"
            case .gllpWithoutDecoys: "gllp-asymptotic"
            }
        }
    }

    /// The same settings with the asymptotic version of the decoy bound (no finite-size terms,
    /// no ε): blocks far smaller than Lim et al.'s bound needs yield key. For tests of the
    /// mechanics and for `finite_key: asymptotic`.
    public func withAsymptoticBound() -> DistillerConfiguration {
        var c = self
        if case .lim2014(var p) = bound {
            p.finiteSize = false
            c.bound = .asymptotic(p)
        }
        return c
    }

    /// Lim et al. (2014) with the default ε_sec = 1e-10, ε_cor = 1e-15 when the source sends
    /// decoys; GLLP without decoys otherwise.
    public init(source: SourceSettings, ecEfficiency: Double) {
        self.source = source
        self.ecEfficiency = ecEfficiency
        bound = source.decoyStates
            ? .lim2014(Lim2014.Parameters(intensities: source.intensities, probabilities: source.probabilities))
            : .gllpWithoutDecoys
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
/// Cascade (Bob asks, Alice answers), verification by two independent universal hashes,
/// Wegman–Carter authentication of the round's transcript (estimation, every Cascade message,
/// the verification and the seeds), and Toeplitz privacy amplification to the length the
/// configured bound allows.
///
/// Final length, per block of n sifted key-basis bits: with decoys, ℓ of Lim, Curty, Walenta,
/// Xu, Zbinden, PRA 89, 022307 (2014), Eq. (1), from the block's X and Z counts per intensity
/// and λ_EC = the bits Cascade revealed plus the verification bits beyond log2(2/ε_cor)
/// (`Lim2014.keyLength`; asymptotic: the same without finite-size terms). Without decoys,
/// GLLP's m = ⌊n (Q1_L/Q_μ)(1 − H2(e1_U)) − leak_EC − leak_verify − margin⌋ (Gottesman, Lo,
/// Lütkenhaus, Preskill 2004), an asymptotic formula (docs/physics.md).
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
        /// The length of the newest authenticated transcript (bits) and its forgery bound
        /// (L + 1)/p per tag (`TranscriptHash.forgeryBound`).
        public var lastTranscriptBits: UInt64?
        /// The collision bound of the newest block's verification (two independent hashes of
        /// its corrected key: `PolynomialHash.doubleCollisionBound`).
        public var lastVerificationBound: Double?
        /// The counts and bound of the newest block distilled here.
        public var lastFiniteKey: FiniteKeyReport?
        public var ecEfficiency: Double? { shannonBits > 0 ? Double(leakedBits) / shannonBits : nil }
    }

    struct Round: Sendable {
        var block: SiftedBlock
        var estimates: Estimates
        var transcript: TranscriptHash
        var alice: CascadeAlice?
        var bob: CascadeBob?
        var done: ReconciliationDone?
        var pads: (UInt128, UInt128)?
        /// Bob, once Cascade is over: his corrected key, the leak and the corrections (the
        /// Cascade state itself is released).
        var corrected: BitVector?
        var leaked = 0
        var corrections = 0
    }

    public let role: Role
    public let configuration: DistillerConfiguration
    let seeds: SeedTree
    let authenticationKey: UInt128
    /// Where the verification, privacy-amplification and key-ID seeds come from (Bob draws
    /// them once Cascade is over): the OS CSPRNG unless the run is reproducible.
    private var secrets: SecretRandom
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

    /// `linkSeeds` is the link's seed tree (the same at both ends: Cascade's permutations,
    /// which are public, come from it); `session` separates sessions so that a restarted link
    /// never reuses permutations. `authenticationKey` is the link's long-term transcript-hash
    /// key (`LinkBootstrap`); `secrecy` says where this end's secret draws come from.
    public init(role: Role, configuration: DistillerConfiguration, linkSeeds: SeedTree, session: UInt64,
                authenticationKey: UInt128, secrecy: Secrecy) {
        self.role = role
        self.configuration = configuration
        seeds = linkSeeds.child("distill/\(session)")
        self.authenticationKey = authenticationKey
        secrets = .make(secrecy, seeds: seeds, label: role == .alice ? "alice/secrets" : "bob/secrets")
        permutations = CascadePermutations(seeds: linkSeeds.child("cascade"))
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

    /// Why a block's counts forbid any key, for a decoy-state link (efficient BB84): the
    /// signal pulses' Z-basis QBER is above `configuration.abortQBER`, or the decoy bounds on
    /// the measured counts, without finite-size terms (Lim et al. 2014, Eqs. 2–5 with δ = 0),
    /// certify no single-photon events in X (s_X,1 ≤ 0) or a phase error of 1/2 or more. A
    /// photon-number-splitting attack that blocks single photons keeps the QBER low and drives
    /// s_X,1 to zero; intercept-resend raises the QBER. The finite-size terms decide how much key
    /// a clean block yields, not whether the link is under attack. Nil for a link without decoys
    /// (`abortReason(_:qberThreshold:)` applies).
    public static func abortReason(_ s: BlockStatistics, configuration: DistillerConfiguration) -> String? {
        let p: Lim2014.Parameters
        switch configuration.bound {
        case .lim2014(let q), .asymptotic(let q): p = q
        case .gllpWithoutDecoys: return nil
        }
        let qber = s.errorRate(.signal)
        if qber > configuration.abortQBER {
            return "QBER \(KeyDistiller.percent(qber)) is above the abort threshold \(KeyDistiller.percent(configuration.abortQBER))"
        }
        var asymptotic = p
        asymptotic.finiteSize = false
        let nX = (0..<3).map { Double(s.sifted[$0] - s.revealed[$0]) }
        let r = Lim2014.keyLength(Lim2014.Counts(nX: nX, nZ: s.revealed.map { Double($0) }, mZ: s.errors.map { Double($0) }, leakEC: 0),
                                  asymptotic)
        if r.sX1 <= 0 || r.sZ1 <= 0 || r.vZ1 / r.sZ1 >= 0.5 {
            return "decoy analysis certifies no single-photon key (s_X,1 \(r.sX1), s_Z,1 \(r.sZ1), v_Z,1 \(r.vZ1))"
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
        let reason = configuration.bound == .gllpWithoutDecoys
            ? KeyDistiller.abortReason(estimates, qberThreshold: configuration.abortQBER)
            : KeyDistiller.abortReason(block.statistics, configuration: configuration)
        if let reason {
            counters.roundsAborted += 1
            return [.estimated(block: block.index, abortReason: reason)]
        }
        // One transcript per round: the block's sifting and estimation messages are already
        // in it; the counts and every distillation message go on into the same hash.
        var transcript = block.transcript ?? TranscriptHash(key: authenticationKey)
        transcript.update(word: block.index)
        for array in [block.statistics.pulses, block.statistics.clicks, block.statistics.sifted,
                      block.statistics.revealed, block.statistics.errors] {
            for v in array { transcript.update(word: v) }
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
    /// keys go into it (pending, then available once the peer acknowledged the round). Each
    /// call on it is one operation between computations (`DistillationPool`): a node's lock is
    /// held for the operation, never through Cascade, hashing or privacy amplification.
    public mutating func received(_ kind: MessageKind, _ payload: [UInt8], pool: inout some DistillationPool) -> [Output] {
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

    private mutating func bobContinue(_ reply: CascadeReply, raw: [UInt8], pool: inout some DistillationPool) throws -> [Output] {
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
        guard let (authKey, padBits) = pool.takeOldestForAuthentication(), let (pad1, pad2) = KeyDistiller.pads(padBits) else {
            rounds[reply.block] = nil
            counters.authenticationKeysMissing += 1
            return [.log("no authentication key left in the pool: block discarded", ["block": "\(reply.block)"])]
        }
        // The seeds of verification, privacy amplification and key IDs, drawn now (after the
        // quantum phase) from secret randomness, and sent under the tag.
        let verificationKey = secrets.next(), verificationKey2 = secrets.next()
        let hash = PolynomialHash.hash(bob.key, key: verificationKey), hash2 = PolynomialHash.hash(bob.key, key: verificationKey2)
        counters.lastVerificationBound = PolynomialHash.doubleCollisionBound(bits: bob.key.count)
        let n = round.block.key.count
        let m = finalLength(round, leaked: bob.leakedBits).bits
        let seedBits = m > 0 ? n + m - 1 : 0
        var seed = secrets.words((seedBits + 63) / 64)
        if seedBits % 64 != 0 { seed[seed.count - 1] &= (1 << UInt64(seedBits % 64)) - 1 }
        let keyIDSeed = secrets.next()
        let acks = toAnnounce
        toAnnounce = []
        var t = round.transcript
        KeyDistiller.absorb(&t, hash: hash, list: acks)
        var done = ReconciliationDone(block: reply.block, verificationHash: hash, verificationHash2: hash2,
                                      verificationKey: verificationKey, verificationKey2: verificationKey2, authenticationKey: authKey, acknowledged: acks, keyIDSeed: keyIDSeed,
                                      privacySeedBits: UInt32(seedBits), privacySeed: seed, tag: 0)
        KeyDistiller.absorbSeeds(&t, done)
        done.tag = TranscriptTag.tag(t.finalize(), pad: pad1)
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

    private mutating func aliceVerify(_ done: ReconciliationDone, pool: inout some DistillationPool) throws -> [Output] {
        guard var round = rounds.removeValue(forKey: done.block), let alice = round.alice else {
            // Bob spent the authentication key he named on this round; spend it here too, or the
            // two pools would differ by that key (a round abandoned here while Bob finished it).
            _ = pool.takeForAuthentication(done.authenticationKey)
            throw ProtocolError(.unknownRound, "reconciliation done for block \(done.block), which is not waiting")
        }
        abandonStale(finished: done.block)
        // The key Bob named is taken here too (whatever the outcome: it was used once).
        guard let padBits = pool.takeForAuthentication(done.authenticationKey), let (pad1, pad2) = KeyDistiller.pads(padBits) else {
            counters.blocksFailedAuthentication += 1
            counters.authenticationKeysMissing += 1
            return [.log("authentication key named by the peer is not held here: block discarded",
                         ["block": "\(done.block)", "key.id": "\(done.authenticationKey)"])]
        }
        var t = round.transcript
        KeyDistiller.absorb(&t, hash: done.verificationHash, list: done.acknowledged)
        KeyDistiller.absorbSeeds(&t, done)
        let tagValid = TranscriptTag.tag(t.finalize(), pad: pad1) == done.tag
        var out: [Output] = []
        if tagValid {
            // Bob accepted these rounds: commit them here, and tell him so.
            for a in done.acknowledged { out += commit(a, pool: &pool) }
            toAnnounce += done.acknowledged
        }
        counters.lastVerificationBound = PolynomialHash.doubleCollisionBound(bits: round.block.key.count)
        let hashesEqual = PolynomialHash.hash(round.block.key.bits, key: done.verificationKey) == done.verificationHash
            && PolynomialHash.hash(round.block.key.bits, key: done.verificationKey2) == done.verificationHash2
        let expectedBits = finalLength(round, leaked: alice.leakedBits).bits
        let seedFits = Int(done.privacySeedBits) == (expectedBits > 0 ? round.block.key.count + expectedBits - 1 : 0)
        var finalBits = 0
        if !tagValid {
            counters.blocksFailedAuthentication += 1
            out.append(.log("authentication failed: block discarded", ["block": "\(done.block)"]))
        } else if !hashesEqual {
            counters.blocksFailedVerification += 1
            out.append(.log("verification failed: block discarded", ["block": "\(done.block)"]))
        } else if !seedFits {
            counters.blocksFailedVerification += 1
            out.append(.log("privacy-amplification seed does not fit the final length: block discarded",
                            ["block": "\(done.block)", "seed_bits": "\(done.privacySeedBits)", "final_bits": "\(expectedBits)"]))
        } else {
            finalBits = expectedBits
        }
        let accepted = tagValid && hashesEqual && seedFits
        let confirmations = tagValid ? toAnnounce : []
        if tagValid { toAnnounce = [] }
        t.update(bits: accepted ? 1 : 0, count: 1)
        t.update(bits: UInt64(finalBits), count: 32)
        KeyDistiller.absorb(&t, list: confirmations)
        let result = ReconciliationResult(block: done.block, accepted: accepted, finalBits: UInt32(finalBits),
                                          confirmed: confirmations, tag: TranscriptTag.tag(t.finalize(), pad: pad2))
        counters.lastTranscriptBits = t.bits
        out.insert(.send(.reconciliationResult, result.encoded()), at: 0)
        if accepted {
            round.transcript = t
            out += deposit(round, leaked: alice.leakedBits, finalBits: finalBits, corrected: round.block.key.bits, seeds: done, pool: &pool)
        }
        return out
    }

    private mutating func bobFinish(_ result: ReconciliationResult, pool: inout some DistillationPool) throws -> [Output] {
        guard let round = rounds.removeValue(forKey: result.block), let corrected = round.corrected, let (_, pad2) = round.pads,
              let done = round.done else {
            throw ProtocolError(.unknownRound, "reconciliation result for block \(result.block), which is not waiting")
        }
        abandonStale(finished: result.block)
        var t = round.transcript
        t.update(bits: result.accepted ? 1 : 0, count: 1)
        t.update(bits: UInt64(result.finalBits), count: 32)
        KeyDistiller.absorb(&t, list: result.confirmed)
        guard TranscriptTag.tag(t.finalize(), pad: pad2) == result.tag else {
            counters.blocksFailedAuthentication += 1
            return [.log("authentication failed: block discarded", ["block": "\(result.block)"])]
        }
        counters.lastTranscriptBits = t.bits
        // Alice committed these: commit them here too.
        var out: [Output] = []
        for c in result.confirmed { out += commit(c, pool: &pool) }
        guard result.accepted else {
            counters.blocksFailedVerification += 1
            return out + [.log("peer rejected the block", ["block": "\(result.block)"])]
        }
        // Bob computes the same length; a disagreement means the peer is not following the protocol.
        let expected = finalLength(round, leaked: round.leaked).bits
        guard expected == Int(result.finalBits) else {
            counters.blocksFailedVerification += 1
            return out + [.log("final length disagrees: block discarded", ["block": "\(result.block)"])]
        }
        toAnnounce.append(result.block)
        return out + deposit(round, leaked: round.leaked, finalBits: expected, corrected: corrected, seeds: done, pool: &pool)
    }

    /// Folds a verification hash and a list of block numbers into a transcript.
    static func absorb(_ t: inout TranscriptHash, hash: UInt64? = nil, list: [UInt64]) {
        if let hash { t.update(word: hash) }
        t.update(bits: UInt64(list.count), count: 32)
        for v in list { t.update(word: v) }
    }

    /// Folds the seeds a `Done` carries into a transcript: the verification key, the key-ID
    /// seed and the privacy-amplification seed (its length, then its words).
    static func absorbSeeds(_ t: inout TranscriptHash, _ done: ReconciliationDone) {
        for v in [done.verificationHash2, done.verificationKey, done.verificationKey2, done.keyIDSeed] { t.update(word: v) }
        t.update(bits: UInt64(done.privacySeedBits), count: 32)
        for v in done.privacySeed { t.update(word: v) }
        t.update(word: done.authenticationKey.high)
        t.update(word: done.authenticationKey.low)
    }

    /// The round's two 128-bit Wegman–Carter pads: the 256 bits of one pool key, each used
    /// once (a key of fewer bits is refused by the pool's key size, `keyBits`).
    static func pads(_ key: BitVector) -> (UInt128, UInt128)? {
        guard key.count >= 2 * TranscriptTag.padBits else { return nil }
        let w = key.words
        return (TranscriptTag.pad(w[0], w[1]), TranscriptTag.pad(w[2], w[3]))
    }

    /// Releases a held round's keys: pending → available in the pool.
    private mutating func commit(_ block: UInt64, pool: inout some DistillationPool) -> [Output] {
        guard let ids = held.removeValue(forKey: block) else { return [] }
        pool.confirm(ids)
        counters.keysCommitted += UInt64(ids.count)
        return [.committed(block: block, ids)]
    }

    /// Gives up held rounds far behind `newest` (the peer never acknowledged them): their
    /// pending keys are discarded.
    private mutating func expireHeld(newest: UInt64, pool: inout some DistillationPool) {
        for block in held.keys where block + KeyDistiller.holdingHorizon < newest {
            pool.discardPending(held[block]!)
            held[block] = nil
            counters.blocksUnconfirmed += 1
        }
    }

    /// Bits the verification publishes: two 64-bit hash values.
    public static let verificationBits = 128

    /// The length the decoy-state bound of `configuration` allows for a block with these
    /// statistics whose Cascade revealed `cascadeLeak` bits, and the counts behind it; nil for
    /// a link without decoys. The verification's bits beyond the log2(2/ε_cor) that Eq. (1)
    /// already pays count as leak.
    public static func finiteKey(_ s: BlockStatistics, cascadeLeak: Int, configuration: DistillerConfiguration) -> FiniteKeyReport? {
        let p: Lim2014.Parameters
        switch configuration.bound {
        case .lim2014(let q), .asymptotic(let q): p = q
        case .gllpWithoutDecoys: return nil
        }
        let paid = p.finiteSize ? Int(log2(2 / p.epsCor).rounded(.down)) : 0
        let leak = UInt64(cascadeLeak + max(0, verificationBits - paid))
        let nX = (0..<3).map { s.sifted[$0] - s.revealed[$0] }
        let counts = Lim2014.Counts(nX: nX.map { Double($0) }, nZ: s.revealed.map { Double($0) }, mZ: s.errors.map { Double($0) },
                                    leakEC: Double(leak))
        let r = Lim2014.keyLength(counts, p)
        return FiniteKeyReport(bound: configuration.bound.name, epsSec: p.finiteSize ? p.epsSec : nil, epsCor: p.finiteSize ? p.epsCor : nil,
                               intensities: p.intensities, probabilities: p.probabilities, pX: configuration.source.xProbability,
                               nX: nX, nZ: s.revealed, mZ: s.errors, leakECBits: leak, sX0: r.sX0, sX1: r.sX1, phiX: r.phiX,
                               keyBits: r.keyBits)
    }

    /// A block's final length under the configured bound, with the counts behind it (nil for
    /// GLLP without decoys). `leaked`: the parity bits Cascade revealed.
    func finalLength(_ round: Round, leaked: Int) -> (bits: Int, report: FiniteKeyReport?) {
        let n = round.block.key.count
        switch configuration.bound {
        case .lim2014, .asymptotic:
            let report = KeyDistiller.finiteKey(round.block.statistics, cascadeLeak: leaked, configuration: configuration)
            return (min(n, report?.keyBits ?? 0), report)
        case .gllpWithoutDecoys:
            // m = ⌊n (Q1_L/Q_μ)(1 − H2(e1_U)) − leak_EC − leak_verify − margin⌋ (0 if negative).
            let e = round.estimates
            let singlePhotonFraction = e.gainSignal > 0 ? min(1, e.singlePhotonGainLower / e.gainSignal) : 0
            let secret = Double(n) * singlePhotonFraction * (1 - binaryEntropy(min(0.5, e.e1Upper)))
            let m = secret - Double(leaked) - Double(KeyDistiller.verificationBits) - Double(configuration.securityMarginBits)
            return (m.isFinite ? max(0, min(n, Int(m.rounded(.down)))) : 0, nil)
        }
    }

    /// `seeds`: the round's `Done`, whose privacy-amplification and key-ID seeds both ends use.
    private mutating func deposit(_ round: Round, leaked: Int, finalBits m: Int, corrected: BitVector, seeds done: ReconciliationDone,
                                  pool: inout some DistillationPool) -> [Output] {
        let n = round.block.key.count
        counters.blocksDistilled += 1
        counters.leakedBits += UInt64(leaked)
        counters.reconciledBits += UInt64(n)
        // Bob knows the errors he corrected; Alice only the estimate.
        let qber = round.corrected != nil ? Double(round.corrections) / Double(max(1, n)) : round.estimates.qberSignal
        if qber > 0 { counters.shannonBits += Double(n) * binaryEntropy(qber) }
        counters.lastFiniteKey = finalLength(round, leaked: leaked).report
        guard m > 0 else {
            counters.blocksWithoutKey += 1
            return [.log("block yields no secret key", ["block": "\(round.block.index)"])]
        }
        let final = ToeplitzHash.apply(seed: BitVector(words: done.privacySeed, count: n + m - 1), input: corrected, outputBits: m)
        counters.finalBits += UInt64(m)
        var keys: [(id: KeyID, bits: BitVector)] = []
        let ids = PulseHash(seed: done.keyIDSeed)
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
