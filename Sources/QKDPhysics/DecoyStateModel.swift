#if canImport(Glibc)
import Glibc
#endif

/// Binary entropy H2(x) = −x log2 x − (1−x) log2(1−x); 0 at 0 and 1, and 1 above 1/2 is
/// never used (callers clamp error rates to [0, 1/2]).
@inlinable
public func binaryEntropy(_ x: Double) -> Double {
    guard x > 0 && x < 1 else { return 0 }
    return -x * log2(x) - (1 - x) * log2(1 - x)
}

/// Parameters of one decoy-state BB84 fibre link, as the asymptotic formulas take them.
public struct LinkPhysics: Sendable, Equatable {
    /// Fibre length L (km).
    public var lengthKm: Double
    /// Fibre loss α (dB/km).
    public var lossDbPerKm: Double
    /// η_Bob: detector efficiency × receiver transmittance.
    public var detectorEfficiency: Double
    /// Y0: background click probability per pulse.
    public var darkCountProbability: Double
    /// e_d: misalignment error probability.
    public var misalignment: Double
    /// f: error-correction inefficiency.
    public var ecEfficiency: Double
    /// μ, ν: signal and weak decoy mean photon numbers.
    public var signalIntensity: Double
    public var decoyIntensity: Double
    /// Extra attenuation on the channel (dB), e.g. a bend or an injected fault.
    public var extraLossDb: Double
    /// q: sifting factor (1/2 for standard BB84 with equal basis probabilities).
    public var siftingFactor: Double

    public init(lengthKm: Double, lossDbPerKm: Double = 0.2, detectorEfficiency: Double = 0.10,
                darkCountProbability: Double = 1e-6, misalignment: Double = 0.015, ecEfficiency: Double = 1.16,
                signalIntensity: Double = 0.5, decoyIntensity: Double = 0.1, extraLossDb: Double = 0,
                siftingFactor: Double = 0.5) {
        self.lengthKm = lengthKm
        self.lossDbPerKm = lossDbPerKm
        self.detectorEfficiency = detectorEfficiency
        self.darkCountProbability = darkCountProbability
        self.misalignment = misalignment
        self.ecEfficiency = ecEfficiency
        self.signalIntensity = signalIntensity
        self.decoyIntensity = decoyIntensity
        self.extraLossDb = extraLossDb
        self.siftingFactor = siftingFactor
    }

    /// Channel transmittance of the fibre alone: η_ch = 10^(−(α L + extra)/10).
    public var channelTransmittance: Double {
        pow(10, -(lossDbPerKm * lengthKm + extraLossDb) / 10)
    }

    /// Overall transmittance η = η_Bob · η_ch (Lo, Ma, Chen, PRL 94, 230504, 2005, Eq. 2).
    public var transmittance: Double { detectorEfficiency * channelTransmittance }
}

/// The asymptotic decoy-state BB84 model: what a link should measure, and the secret key rate
/// that follows. Every formula cites its source; see docs/physics.md.
public struct DecoyStateModel: Sendable {
    public let physics: LinkPhysics

    public init(_ physics: LinkPhysics) { self.physics = physics }

    var eta: Double { physics.transmittance }
    var y0: Double { physics.darkCountProbability }

    /// Gain Q_μ = Y0 + 1 − e^(−ημ) (Ma, Qi, Zhao, Lo, PRA 72, 012326, 2005, Eq. 3).
    public func gain(_ mu: Double) -> Double { y0 + 1 - exp(-eta * mu) }

    /// Error rate E_μ with E_μ Q_μ = Y0/2 + e_d (1 − e^(−ημ)) (Ma et al. 2005, Eq. 4).
    public func errorRate(_ mu: Double) -> Double {
        (y0 / 2 + physics.misalignment * (1 - exp(-eta * mu))) / gain(mu)
    }

    /// Single-photon yield Y1 ≈ Y0 + η and error e1 = (Y0/2 + e_d η)/Y1 (Ma et al. 2005, Eq. 5–6).
    public var singlePhotonYield: Double { y0 + eta }
    public var singlePhotonError: Double { (y0 / 2 + physics.misalignment * eta) / singlePhotonYield }

    /// The decoy bounds computed from this model's own gains and errors.
    public var asymptoticBounds: DecoyBounds {
        DecoyBounds.vacuumWeak(
            mu: physics.signalIntensity, nu: physics.decoyIntensity, gainSignal: gain(physics.signalIntensity),
            errorSignal: errorRate(physics.signalIntensity), gainDecoy: gain(physics.decoyIntensity),
            errorDecoy: errorRate(physics.decoyIntensity), y0: y0)
    }

    /// Key per signal pulse with vacuum + weak decoy bounds (the GLLP formula with Y1_L, e1_U).
    public var keyRatePerPulse: Double {
        let b = asymptoticBounds
        return KeyRate.gllpDecoy(q: physics.siftingFactor, f: physics.ecEfficiency,
                                 gainSignal: gain(physics.signalIntensity),
                                 errorSignal: errorRate(physics.signalIntensity),
                                 singlePhotonGain: b.singlePhotonGainLower, singlePhotonError: b.singlePhotonErrorUpper)
    }

    /// Key per pulse without decoys, against the photon-number-splitting attack.
    public var keyRatePerPulseWithoutDecoys: Double {
        KeyRate.gllpNoDecoy(q: physics.siftingFactor, f: physics.ecEfficiency, mu: physics.signalIntensity,
                            gain: gain(physics.signalIntensity), error: errorRate(physics.signalIntensity))
    }

    /// The PLOB repeaterless bound −log2(1 − η_ch) in secret bits per channel use
    /// (Pirandola, Laurenza, Ottaviani, Banchi, Nat. Commun. 8, 15043, 2017, Eq. 1).
    /// It applies to the fibre transmittance; detectors belong to the receiver.
    public var plobBound: Double { KeyRate.plob(transmittance: physics.channelTransmittance) }
}

/// Lower bound on the single-photon yield and upper bound on its error, from measured gains.
public struct DecoyBounds: Sendable, Equatable {
    public var y1Lower: Double
    public var e1Upper: Double
    public var singlePhotonGainLower: Double
    public var singlePhotonErrorUpper: Double { e1Upper }

    /// Vacuum + weak decoy bounds (Ma, Qi, Zhao, Lo, PRA 72, 012326, 2005, Eqs. 34 and 37):
    ///   Y1_L = μ/(μν − ν²) · [Q_ν e^ν − Q_μ e^μ ν²/μ² − (μ² − ν²)/μ² · Y0]
    ///   e1_U = (E_ν Q_ν e^ν − Y0/2) / (Y1_L ν)
    ///   Q1_L = μ e^(−μ) Y1_L
    /// A non-positive Y1_L means no single-photon key can be certified; e1_U is then 1/2.
    public static func vacuumWeak(mu: Double, nu: Double, gainSignal: Double, errorSignal: Double,
                                  gainDecoy: Double, errorDecoy: Double, y0: Double) -> DecoyBounds {
        let y1 = mu / (mu * nu - nu * nu)
            * (gainDecoy * exp(nu) - gainSignal * exp(mu) * nu * nu / (mu * mu) - (mu * mu - nu * nu) / (mu * mu) * y0)
        guard y1 > 0, y1.isFinite else { return DecoyBounds(y1Lower: max(0, y1.isFinite ? y1 : 0), e1Upper: 0.5, singlePhotonGainLower: 0) }
        let e1 = min(0.5, max(0, (errorDecoy * gainDecoy * exp(nu) - y0 / 2) / (y1 * nu)))
        return DecoyBounds(y1Lower: y1, e1Upper: e1, singlePhotonGainLower: mu * exp(-mu) * y1)
    }
}

/// Secret-key-rate formulas.
public enum KeyRate {
    /// GLLP with decoy bounds: R = q { −Q_μ f H2(E_μ) + Q1 [1 − H2(e1)] }
    /// (Gottesman, Lo, Lütkenhaus, Preskill, QIC 4, 325, 2004; Lo, Ma, Chen, PRL 94, 230504,
    /// 2005, Eq. 1). Negative values are reported as 0: no key.
    public static func gllpDecoy(q: Double, f: Double, gainSignal: Double, errorSignal: Double,
                                 singlePhotonGain: Double, singlePhotonError: Double) -> Double {
        let r = q * (-gainSignal * f * binaryEntropy(min(0.5, errorSignal))
            + singlePhotonGain * (1 - binaryEntropy(min(0.5, singlePhotonError))))
        return max(0, r)
    }

    /// GLLP without decoys, worst-case photon-number splitting: with the multi-photon fraction
    /// Δ = [1 − (1 + μ) e^(−μ)] / Q_μ,
    /// R = q { −Q_μ f H2(E_μ) + Q_μ (1 − Δ) [1 − H2(E_μ / (1 − Δ))] } (GLLP 2004).
    public static func gllpNoDecoy(q: Double, f: Double, mu: Double, gain: Double, error: Double) -> Double {
        let delta = multiPhotonProbability(mu: mu) / gain
        guard delta < 1 else { return 0 }
        let r = q * (-gain * f * binaryEntropy(min(0.5, error))
            + gain * (1 - delta) * (1 - binaryEntropy(min(0.5, error / (1 - delta)))))
        return max(0, r)
    }

    /// The multi-photon (tagged) fraction Δ of detected signal pulses under GLLP without decoys.
    public static func taggedFraction(mu: Double, gain: Double) -> Double {
        min(1, multiPhotonProbability(mu: mu) / gain)
    }

    /// P_multi(μ) = 1 − (1 + μ) e^(−μ): the probability that a Poisson(μ) pulse holds two or
    /// more photons (what photon-number splitting can tag; GLLP 2004).
    public static func multiPhotonProbability(mu: Double) -> Double {
        1 - (1 + mu) * exp(-mu)
    }

    /// PLOB: −log2(1 − η) (Pirandola et al., Nat. Commun. 8, 15043, 2017).
    public static func plob(transmittance eta: Double) -> Double {
        eta >= 1 ? .infinity : -log2(1 - eta)
    }
}
