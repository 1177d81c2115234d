import QKDCore
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Parameter estimation decides whether a block may become key: above the QBER threshold, or
/// with a decoy analysis that certifies no single-photon key, both ends drop the block.
@Suite struct ParameterEstimationAbortTests {
    static let decoySource = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15,
                                            xProbability: 0.9)

    /// Statistics of one block of efficient BB84 (p_X = 0.9 at both ends): per class (signal,
    /// decoy, vacuum) pulses and clicks; the clicks in matching bases sifted (0.82 of them), the
    /// Z ones among those (1/82) revealed, with `errorRate` errors among the revealed signal and
    /// decoy bits and half of the vacuum ones.
    static func statistics(pulses: [UInt64], gains: [Double], errorRate: Double) -> BlockStatistics {
        var s = BlockStatistics()
        for c in 0..<3 {
            s.pulses[c] = pulses[c]
            s.clicks[c] = UInt64((Double(pulses[c]) * gains[c]).rounded())
            s.sifted[c] = UInt64((Double(s.clicks[c]) * 0.82).rounded())
            s.revealed[c] = UInt64((Double(s.sifted[c]) / 82).rounded())
            s.errors[c] = c == 2 ? s.revealed[c] / 2 : UInt64((Double(s.revealed[c]) * errorRate).rounded())
        }
        return s
    }

    static func block(_ statistics: BlockStatistics) -> SiftedBlock {
        let n = Int((0..<3).map { statistics.sifted[$0] - statistics.revealed[$0] }.reduce(0, +))
        return SiftedBlock(index: 0, key: BitVectorBox(BitVector(count: n)), statistics: statistics)
    }

    static func reason(_ outputs: [KeyDistiller.Output]) -> String?? {
        for o in outputs { if case .estimated(_, let reason) = o { return .some(reason) } }
        return .none
    }

    static let pulses: [UInt64] = [70_000_000, 15_000_000, 15_000_000]
    /// line-3's 25 km link: gains μt, νt of transmittance 0.0316, dark counts 1e-6.
    static let honestGains = [1 - exp(-0.5 * 0.0316) + 1e-6, 1 - exp(-0.1 * 0.0316) + 1e-6, 1e-6]

    @Test func anHonestBlockPassesAndGoesToCascade() {
        let s = Self.statistics(pulses: Self.pulses, gains: Self.honestGains, errorRate: 0.015)
        let e = s.estimates(source: Self.decoySource, ecEfficiency: 1.16)
        #expect(KeyDistiller.abortReason(e, qberThreshold: 0.11) == nil)
        var pair = distillers(seed: 7)
        let bob = pair.bob.sifted(Self.block(s))
        #expect(Self.reason(bob) == .some(nil))
        #expect(bob.contains { if case .send(.cascadeRequest, _) = $0 { true } else { false } })
        #expect(pair.bob.counters.roundsAborted == 0)
    }

    @Test(arguments: [0.12, 0.25, 0.5])
    func aBlockAboveTheQBERThresholdIsDroppedAtBothEnds(qber: Double) {
        let s = Self.statistics(pulses: Self.pulses, gains: Self.honestGains, errorRate: qber)
        var pair = distillers(seed: 8)
        let before = pair.alicePool.availableIDs
        let alice = pair.alice.sifted(Self.block(s)), bob = pair.bob.sifted(Self.block(s))
        for outputs in [alice, bob] {
            let reason = Self.reason(outputs)
            #expect(reason != nil && reason! != nil && reason!!.contains("QBER"), "\(outputs)")
            #expect(!outputs.contains { if case .send = $0 { true } else { false } }, "no Cascade for an aborted block")
        }
        #expect(pair.alice.counters.roundsAborted == 1 && pair.bob.counters.roundsAborted == 1)
        #expect(pair.alice.unfinishedRounds == 0 && pair.bob.unfinishedRounds == 0)
        #expect(pair.alicePool.availableIDs == before)
    }

    /// Photon-number splitting with blocking: Eve forwards 18 % of the multi-photon pulses
    /// losslessly and blocks every single photon, so the signal gain is kept (and the QBER is
    /// untouched) but the decoy gain falls to a fifth: Y1_L < 0.
    @Test func photonNumberSplittingIsCaughtByTheDecoyAnalysisNotByTheQBER() {
        func multi(_ mu: Double) -> Double { 1 - exp(-mu) * (1 + mu) }
        let forwarded = 0.18
        let gains = [multi(0.5) * forwarded, multi(0.1) * forwarded, 1e-6]
        let s = Self.statistics(pulses: Self.pulses, gains: gains, errorRate: 0.015)
        let e = s.estimates(source: Self.decoySource, ecEfficiency: 1.16)
        #expect(e.qberSignal < 0.11)
        let reason = KeyDistiller.abortReason(e, qberThreshold: 0.11)
        #expect(reason?.contains("single-photon") == true, "\(e)")
        // Without decoy states the same statistics pass: the attack is invisible.
        let noDecoy = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 1, decoyProbability: 0, vacuumProbability: 0,
                                     decoyStates: false)
        #expect(KeyDistiller.abortReason(s.estimates(source: noDecoy, ecEfficiency: 1.16), qberThreshold: 0.11) == nil)
    }
}

/// A round Alice abandoned (its messages were refused or late) while Bob finished it: his
/// `Done` still spends the authentication key he named at her end, so the pools stay equal.
@Suite struct AbandonedRoundTests {
    @Test func aDoneForAnAbandonedRoundSpendsTheNamedAuthenticationKey() throws {
        let blocks = try siftedBlocks(km: 20, seed: 11, blocks: 1)
        var pair = distillers(seed: 11)
        _ = pair.alice.sifted(blocks[0].alice)
        var queue: [(toAlice: Bool, kind: MessageKind, payload: [UInt8])] = pair.bob.sifted(blocks[0].bob).compactMap {
            if case .send(let k, let p) = $0 { (true, k, p) } else { nil }
        }
        var named: KeyID?
        while !queue.isEmpty {
            let (toAlice, kind, payload) = queue.removeFirst()
            if kind == .reconciliationDone {
                named = try ReconciliationDone.decode(payload).authenticationKey
                let abandoned = pair.alice.abandon(0)
                #expect(abandoned, "Alice gives the round up before Bob's Done arrives")
            }
            let out = toAlice ? pair.alice.received(kind, payload, pool: &pair.alicePool) : pair.bob.received(kind, payload, pool: &pair.bobPool)
            for o in out { if case .send(let k, let p) = o { queue.append((!toAlice, k, p)) } }
        }
        let key = try #require(named)
        #expect(!pair.bobPool.availableIDs.contains(key))
        #expect(!pair.alicePool.availableIDs.contains(key), "spent at Alice's end too")
        #expect(Set(pair.alicePool.availableIDs) == Set(pair.bobPool.availableIDs))
    }
}

/// No normal approximation enters the key length of a decoy-state link: ℓ comes from Lim et
/// al.'s Hoeffding bounds on the counts, so the Wilson bounds' width (u_α) changes the reported
/// estimates and nothing of ℓ; and at small counts, where a normal bound under-covers, the
/// Hoeffding deviation is the wider one.
@Suite struct FiniteKeyLengthTests {
    @Test func theKeyLengthIgnoresTheWilsonBoundsAndUsesHoeffding() throws {
        let s = ParameterEstimationAbortTests.statistics(pulses: [6_000_000_000, 2_800_000_000, 1_200_000_000],
                                                         gains: ParameterEstimationAbortTests.honestGains, errorRate: 0.015)
        let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.6, decoyProbability: 0.28, vacuumProbability: 0.12,
                                    xProbability: 0.9)
        var narrow = DistillerConfiguration(source: source, ecEfficiency: 1.16)
        narrow.standardDeviations = 1
        var wide = narrow
        wide.standardDeviations = 10
        let a = try #require(KeyDistiller.finiteKey(s, cascadeLeak: 100_000, configuration: narrow))
        let b = try #require(KeyDistiller.finiteKey(s, cascadeLeak: 100_000, configuration: wide))
        #expect(a == b && a.keyBits > 0, "\(a)")
        #expect(s.estimates(source: source, ecEfficiency: 1.16, standardDeviations: 1).e1Upper
                < s.estimates(source: source, ecEfficiency: 1.16, standardDeviations: 10).e1Upper)
        // The deviation Hoeffding allows on the vacuum count is sqrt((N/2) ln(21/ε_sec)); a 5σ
        // normal bound on that count would allow 5 sqrt(n_μ3), far less for a handful of counts.
        let p = Lim2014.Parameters(intensities: [0.5, 0.1, 0], probabilities: [0.6, 0.28, 0.12])
        let n = [1000.0, 200.0, 5.0]
        let (lower, upper) = Lim2014.hoeffding(n, p)
        let delta = (n.reduce(0, +) / 2 * log(21 / p.epsSec)).squareRoot()
        #expect(lower[2] == 0 && abs(upper[2] / (1 / 0.12) - (5 + delta)) < 1e-9)
        #expect(delta > 5 * 5.0.squareRoot())
    }
}
