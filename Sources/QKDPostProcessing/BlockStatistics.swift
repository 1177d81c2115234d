import QKDPhysics

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
    public func estimates(source: SourceSettings, ecEfficiency f: Double, siftingFactor q: Double = 0.5) -> Estimates {
        let qs = gain(.signal), es = errorRate(.signal)
        var e = Estimates(gainSignal: qs, qberSignal: es, gainDecoy: gain(.decoy), qberDecoy: errorRate(.decoy),
                          y0: gain(.vacuum), y1Lower: 0, e1Upper: 0.5, singlePhotonGainLower: 0, keyPerSignalPulse: 0,
                          decoyStates: source.decoyStates)
        if source.decoyStates {
            let b = DecoyBounds.vacuumWeak(mu: source.intensities[0], nu: source.intensities[1], gainSignal: qs,
                                           errorSignal: es, gainDecoy: e.gainDecoy, errorDecoy: e.qberDecoy, y0: e.y0)
            e.y1Lower = b.y1Lower
            e.e1Upper = b.e1Upper
            e.singlePhotonGainLower = b.singlePhotonGainLower
            e.keyPerSignalPulse = KeyRate.gllpDecoy(q: q, f: f, gainSignal: qs, errorSignal: es,
                                                    singlePhotonGain: b.singlePhotonGainLower, singlePhotonError: b.e1Upper)
        } else if qs > 0 {
            e.keyPerSignalPulse = KeyRate.gllpNoDecoy(q: q, f: f, mu: source.intensities[0], gain: qs, error: es)
        }
        return e
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
}

/// One block of sifted key with its estimates: the bits are this end's own (they still
/// differ from the other end's where errors occurred; error correction comes next).
public struct SiftedBlock: Sendable {
    public let index: UInt64
    public let key: BitVectorBox
    public let statistics: BlockStatistics
}
