import QKDCore
import QKDPhysics
#if canImport(Glibc)
import Glibc
#endif

/// What one block of sifted key measured, per pulse class (signal, decoy, vacuum): pulses
/// sent, clicks (either basis), sifted bits (same basis), bits revealed for estimation, and
/// errors among them. Both ends hold the same statistics after estimation.
public struct BlockStatistics: Equatable, Sendable, Codable {
    public var pulses: [UInt64] = [0, 0, 0]
    public var clicks: [UInt64] = [0, 0, 0]
    public var sifted: [UInt64] = [0, 0, 0]
    public var revealed: [UInt64] = [0, 0, 0]
    public var errors: [UInt64] = [0, 0, 0]

    public init() {}

    public static func + (a: BlockStatistics, b: BlockStatistics) -> BlockStatistics {
        var s = BlockStatistics()
        for c in 0..<3 {
            s.pulses[c] = a.pulses[c] + b.pulses[c]
            s.clicks[c] = a.clicks[c] + b.clicks[c]
            s.sifted[c] = a.sifted[c] + b.sifted[c]
            s.revealed[c] = a.revealed[c] + b.revealed[c]
            s.errors[c] = a.errors[c] + b.errors[c]
        }
        return s
    }

    /// Gain Q_c: clicks per pulse of class c.
    public func gain(_ c: PulseClass) -> Double {
        pulses[c.rawValue] == 0 ? 0 : Double(clicks[c.rawValue]) / Double(pulses[c.rawValue])
    }

    /// Error rate E_c among revealed sifted bits of class c.
    public func errorRate(_ c: PulseClass) -> Double {
        revealed[c.rawValue] == 0 ? 0 : Double(errors[c.rawValue]) / Double(revealed[c.rawValue])
    }

    /// Estimates from the measured values only (never from the model): gains, error rates,
    /// Y0 from the vacuum gain, and the vacuum + weak decoy bounds Y1_L, e1_U (Ma, Qi, Zhao,
    /// Lo 2005) when decoys were sent; the GLLP key per signal pulse with inefficiency `f`.
    ///
    /// Statistical fluctuations: every measured rate entering the bounds is replaced by its
    /// one-sided confidence bound at `standardDeviations` (u_α) standard deviations, in the
    /// direction that lowers the key (Ma, Qi, Zhao, Lo, PRA 72, 012326, 2005, Sec. V, Eqs. 41–43:
    /// Q_ν^L, Q_μ^U, Y0^U for Y1_L; (E_ν Q_ν)^U and Y0^L for e1_U; E_μ^U from the sample). The
    /// rate bounds are Wilson score bounds, which stay sound for zero counts. u = 0 gives the
    /// plain asymptotic estimates; the default 5 fails with probability below 3e-7 per bound.
    public func estimates(source: SourceSettings, ecEfficiency f: Double, siftingFactor q: Double = 0.5,
                          standardDeviations u: Double = 5) -> Estimates {
        let qs = gain(.signal), es = errorRate(.signal)
        var e = Estimates(gainSignal: qs, qberSignal: es, gainDecoy: gain(.decoy), qberDecoy: errorRate(.decoy),
                          y0: gain(.vacuum), y1Lower: 0, e1Upper: 0.5, singlePhotonGainLower: 0, keyPerSignalPulse: 0,
                          decoyStates: source.decoyStates, standardDeviations: u)
        let esUpper = BlockStatistics.wilson(errors[0], revealed[0], u).upper
        if source.decoyStates {
            let mu = source.intensities[0], nu = source.intensities[1]
            let qsUpper = BlockStatistics.wilson(clicks[0], pulses[0], u).upper
            let qd = BlockStatistics.wilson(clicks[1], pulses[1], u)
            let ed = BlockStatistics.wilson(errors[1], revealed[1], u)
            let y0 = BlockStatistics.wilson(clicks[2], pulses[2], u)
            var y1 = mu / (mu * nu - nu * nu)
                * (qd.lower * exp(nu) - qsUpper * exp(mu) * nu * nu / (mu * mu) - (mu * mu - nu * nu) / (mu * mu) * y0.upper)
            if !y1.isFinite { y1 = 0 }
            if y1 > 0 {
                let e1 = min(0.5, max(0, (ed.upper * qd.upper * exp(nu) - y0.lower / 2) / (y1 * nu)))
                e.y1Lower = y1
                e.e1Upper = e1
                e.singlePhotonGainLower = mu * exp(-mu) * y1
                e.keyPerSignalPulse = KeyRate.gllpDecoy(q: q, f: f, gainSignal: qs, errorSignal: esUpper,
                                                        singlePhotonGain: e.singlePhotonGainLower, singlePhotonError: e1)
            } else {
                e.y1Lower = max(0, y1)
            }
        } else if qs > 0 {
            // GLLP without decoys: every multi-photon pulse may have been split and detected, so
            // at least Q_μ,L − P_multi(μ) of the gain is untagged (single-photon or vacuum), and
            // all errors may sit there: e1_U = E_μ,U Q_μ / Q_1,L = E/(1 − Δ) (Gottesman, Lo,
            // Lütkenhaus, Preskill, QIC 4, 325, 2004). Privacy amplification reads these.
            let mu = source.intensities[0]
            let qsLower = BlockStatistics.wilson(clicks[0], pulses[0], u).lower
            let untagged = qsLower - KeyRate.multiPhotonProbability(mu: mu)
            if untagged > 0 {
                e.singlePhotonGainLower = untagged * qs / qsLower
                e.e1Upper = min(0.5, esUpper * qs / e.singlePhotonGainLower)
                e.keyPerSignalPulse = KeyRate.gllpNoDecoy(q: q, f: f, mu: mu, gain: qsLower, error: esUpper)
            }
        }
        return e
    }

    /// Wilson score bounds on a rate k/n at u standard deviations (Wilson, JASA 22, 209, 1927).
    public static func wilson(_ k: UInt64, _ n: UInt64, _ u: Double) -> (lower: Double, upper: Double) {
        guard n > 0 else { return (0, 1) }
        let nd = Double(n), p = Double(k) / nd
        guard u > 0 else { return (p, p) }
        let z2 = u * u
        let center = (p + z2 / (2 * nd)) / (1 + z2 / nd)
        let half = u * sqrt(p * (1 - p) / nd + z2 / (4 * nd * nd)) / (1 + z2 / nd)
        return (max(0, center - half), min(1, center + half))
    }
}

/// A block's estimates, as both ends compute them from the same statistics.
public struct Estimates: Equatable, Sendable, Codable {
    public var gainSignal: Double
    public var qberSignal: Double
    public var gainDecoy: Double
    public var qberDecoy: Double
    public var y0: Double
    public var y1Lower: Double
    public var e1Upper: Double
    public var singlePhotonGainLower: Double
    /// GLLP secret key per signal pulse (0 when none can be certified).
    public var keyPerSignalPulse: Double
    public var decoyStates: Bool
    /// u_α used for the fluctuation bounds (0: asymptotic).
    public var standardDeviations: Double
}

/// One block of sifted key with its estimates: the bits are this end's own (they still
/// differ from the other end's where errors occurred; error correction comes next).
public struct SiftedBlock: Sendable {
    public let index: UInt64
    public let key: BitVectorBox
    public let statistics: BlockStatistics
    /// The transcript hash so far: every sifting and estimation message of the block, in
    /// frame order (both ends compute it from what they sent and received). Distillation
    /// absorbs its own messages into the same hash and authenticates the whole (nil: a block
    /// made without its messages, whose transcript starts at distillation).
    public let transcript: TranscriptHash?

    public init(index: UInt64, key: BitVectorBox, statistics: BlockStatistics, transcript: TranscriptHash? = nil) {
        self.index = index
        self.key = key
        self.statistics = statistics
        self.transcript = transcript
    }
}
