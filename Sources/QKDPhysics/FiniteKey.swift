#if canImport(Glibc)
import Glibc
#endif

/// The composable finite-key length of efficient decoy-state BB84 with three intensities:
/// C. C.-W. Lim, M. Curty, N. Walenta, F. Xu, H. Zbinden, "Concise security bounds for practical
/// decoy-state quantum key distribution", Phys. Rev. A 89, 022307 (2014), arXiv:1311.7129,
/// Eqs. (1)–(5) and the Hoeffding bounds of its appendix (docs/physics.md, "Finite key").
///
/// The key comes from the X basis (both ends chose X, probability p_X each); every Z-basis
/// detection is revealed to bound the phase error. Intensities μ1 > μ2 + μ3, μ2 > μ3 ≥ 0. The
/// secrecy parameter ε_sec is split into 21 parts as in the paper; the protocol is
/// (ε_sec + ε_cor)-secure. Counts are `Double` so that expected counts (from the analytic model)
/// and measured ones (integers) go through the same formulas.
public enum Lim2014 {
    public struct Parameters: Sendable, Equatable {
        /// [μ1, μ2, μ3].
        public var intensities: [Double]
        /// [p_μ1, p_μ2, p_μ3], summing to 1.
        public var probabilities: [Double]
        public var epsSec: Double
        public var epsCor: Double
        /// false: the asymptotic version of the same bounds (no Hoeffding deviation, no
        /// sampling term, no ε terms), for `finite_key: asymptotic`.
        public var finiteSize: Bool

        public init(intensities: [Double], probabilities: [Double], epsSec: Double = 1e-10, epsCor: Double = 1e-15,
                    finiteSize: Bool = true) {
            self.intensities = intensities
            self.probabilities = probabilities
            self.epsSec = epsSec
            self.epsCor = epsCor
            self.finiteSize = finiteSize
        }

        /// Why these parameters are outside the paper's protocol (nil when they are inside).
        public var problem: String? {
            guard intensities.count == 3, probabilities.count == 3 else { return "three intensities and three probabilities are needed" }
            let (m1, m2, m3) = (intensities[0], intensities[1], intensities[2])
            guard m3 >= 0, m2 > m3, m1 > m2 + m3 else { return "the intensities must satisfy μ1 > μ2 + μ3 and μ2 > μ3 ≥ 0" }
            guard probabilities.allSatisfy({ $0 > 0 }), abs(probabilities.reduce(0, +) - 1) < 1e-9 else {
                return "the intensity probabilities must be positive and sum to 1"
            }
            guard epsSec > 0, epsSec < 1, epsCor > 0, epsCor < 1 else { return "ε_sec and ε_cor must lie in (0, 1)" }
            return nil
        }
    }

    /// What one block measured, per intensity [μ1, μ2, μ3].
    public struct Counts: Sendable, Equatable {
        /// Detections with both ends in X (the key basis).
        public var nX: [Double]
        /// Detections with both ends in Z (all revealed).
        public var nZ: [Double]
        /// Errors among the Z detections.
        public var mZ: [Double]
        /// λ_EC: the bits error correction actually revealed.
        public var leakEC: Double

        public init(nX: [Double], nZ: [Double], mZ: [Double], leakEC: Double) {
            self.nX = nX
            self.nZ = nZ
            self.mZ = mZ
            self.leakEC = leakEC
        }
    }

    /// The bounds behind ℓ and ℓ itself.
    public struct Result: Sendable, Equatable {
        /// Lower bounds on the vacuum and single-photon events in X and Z.
        public var sX0: Double
        public var sX1: Double
        public var sZ0: Double
        public var sZ1: Double
        /// Upper bound on the single-photon errors in Z.
        public var vZ1: Double
        /// Upper bound on the single-photon phase error in X (1/2 when nothing can be bounded).
        public var phiX: Double
        /// ℓ before rounding and clamping (negative: no key).
        public var unclampedBits: Double
        /// ℓ: the secret bits this block yields (0 when ℓ ≤ 0).
        public var keyBits: Int
    }

    /// τ_n = Σ_k e^(−k) k^n p_k / n!: the probability that a pulse holds n photons.
    public static func tau(_ n: Int, _ p: Parameters) -> Double {
        var factorial = 1.0
        for i in stride(from: 2, through: n, by: 1) { factorial *= Double(i) }
        return zip(p.intensities, p.probabilities).map { k, pk in exp(-k) * pow(k, Double(n)) * pk / factorial }.reduce(0, +)
    }

    /// Hoeffding's bounds on the counts that pulses of intensity k would give, from the observed
    /// counts `n` per intensity: n^±_k = (e^k / p_k) [n_k ± sqrt((N/2) ln(21/ε_sec))], N = Σ n_k
    /// (Lim et al. 2014, Eq. (2) and appendix).
    public static func hoeffding(_ n: [Double], _ p: Parameters) -> (lower: [Double], upper: [Double]) {
        let delta = p.finiteSize ? (n.reduce(0, +) / 2 * log(21 / p.epsSec)).squareRoot() : 0
        let scale = zip(p.intensities, p.probabilities).map { k, pk in exp(k) / pk }
        return (zip(n, scale).map { max(0, $0 - delta) * $1 }, zip(n, scale).map { ($0 + delta) * $1 })
    }

    /// The vacuum and single-photon lower bounds of one basis (Lim et al. 2014, Eqs. (3)–(4)):
    ///   s_0 ≥ τ0 (μ2 n⁻_μ3 − μ3 n⁺_μ2) / (μ2 − μ3)
    ///   s_1 ≥ τ1 μ1 / [μ1(μ2 − μ3) − μ2² + μ3²] · [n⁻_μ2 − n⁺_μ3 − (μ2² − μ3²)/μ1² (n⁺_μ1 − s_0/τ0)]
    static func vacuumAndSinglePhoton(_ n: [Double], _ p: Parameters) -> (s0: Double, s1: Double) {
        let (m1, m2, m3) = (p.intensities[0], p.intensities[1], p.intensities[2])
        let (lower, upper) = hoeffding(n, p)
        let tau0 = tau(0, p), tau1 = tau(1, p)
        let s0 = max(0, tau0 * (m2 * lower[2] - m3 * upper[1]) / (m2 - m3))
        let s1 = tau1 * m1 / (m1 * (m2 - m3) - m2 * m2 + m3 * m3)
            * (lower[1] - upper[2] - (m2 * m2 - m3 * m3) / (m1 * m1) * (upper[0] - s0 / tau0))
        return (s0, max(0, s1))
    }

    /// γ(a, b, c, d) = sqrt( (c + d)(1 − b) b / (c d ln 2) · log2( (c + d) / (c d (1 − b) b) · 21² / a² ) ):
    /// the sampling term of the phase error (random sampling without replacement; Lim et al.
    /// 2014, Eq. (5)).
    public static func gamma(_ a: Double, _ b: Double, _ c: Double, _ d: Double) -> Double {
        guard b > 0, b < 1, c > 0, d > 0 else { return 0.5 }
        let inner = (c + d) / (c * d * (1 - b) * b) * 21 * 21 / (a * a)
        guard inner > 1 else { return 0 }
        return ((c + d) * (1 - b) * b / (c * d * log(2)) * log2(inner)).squareRoot()
    }

    /// ℓ = ⌊ s_X,0 + s_X,1 (1 − h(φ_X)) − λ_EC − 6 log2(21/ε_sec) − log2(2/ε_cor) ⌋
    /// (Lim et al. 2014, Eq. (1)), with v_Z,1 ≤ τ1 (m⁺_Z,μ2 − m⁻_Z,μ3) / (μ2 − μ3) and
    /// φ_X ≤ v_Z,1/s_Z,1 + γ(ε_sec, v_Z,1/s_Z,1, s_Z,1, s_X,1) (Eq. (5)).
    public static func keyLength(_ c: Counts, _ p: Parameters) -> Result {
        let (m2, m3) = (p.intensities[1], p.intensities[2])
        let x = vacuumAndSinglePhoton(c.nX, p), z = vacuumAndSinglePhoton(c.nZ, p)
        let (mLower, mUpper) = hoeffding(c.mZ, p)
        let vZ1 = max(0, tau(1, p) * (mUpper[1] - mLower[2]) / (m2 - m3))
        var phi = 0.5
        if z.s1 > 0, x.s1 > 0 {
            let ratio = min(0.5, vZ1 / z.s1)
            phi = min(0.5, ratio + (p.finiteSize ? gamma(p.epsSec, ratio, z.s1, x.s1) : 0))
        }
        let epsilonTerms = p.finiteSize ? 6 * log2(21 / p.epsSec) + log2(2 / p.epsCor) : 0
        let bits = x.s0 + x.s1 * (1 - binaryEntropy(phi)) - c.leakEC - epsilonTerms
        return Result(sX0: x.s0, sX1: x.s1, sZ0: z.s0, sZ1: z.s1, vZ1: vZ1, phiX: phi, unclampedBits: bits,
                      keyBits: bits > 0 ? Int(bits.rounded(.down)) : 0)
    }

    /// The counts a block of `pulses` pulses should give on average (the analytic model of Ma,
    /// Qi, Zhao, Lo, PRA 72, 012326, 2005, Eqs. 3–4, per intensity): detections
    /// N p_k p_B² Q_k in each basis B (p_X for X, 1 − p_X for Z), errors E_k among them, and
    /// λ_EC = f n_X h(E_X) for error correction at inefficiency f.
    public static func expectedCounts(_ physics: LinkPhysics, _ p: Parameters, pX: Double, pulses: Double) -> Counts {
        let model = DecoyStateModel(physics)
        var nX: [Double] = [], nZ: [Double] = [], mZ: [Double] = [], errorsX = 0.0
        for (k, pk) in zip(p.intensities, p.probabilities) {
            let q = model.gain(k), e = model.errorRate(k)
            nX.append(pulses * pk * pX * pX * q)
            nZ.append(pulses * pk * (1 - pX) * (1 - pX) * q)
            mZ.append(nZ.last! * e)
            errorsX += nX.last! * e
        }
        let totalX = nX.reduce(0, +)
        let leak = totalX > 0 ? physics.ecEfficiency * totalX * binaryEntropy(errorsX / totalX) : 0
        return Counts(nX: nX, nZ: nZ, mZ: mZ, leakEC: leak)
    }

    /// The best expected key per pulse of a block of `pulses` pulses over a grid of the free
    /// parameters (μ1 ∈ {0.3 … 0.7}, μ2 ∈ {0.05 … 0.3}, μ3 = 0, p_μ1 ∈ {0.3 … 0.8}, the rest split
    /// 3:7, 1:1 or 7:3 between μ2 and μ3, p_X ∈ {0.7 … 0.97}), the search behind the reference's
    /// table (../shared/reference/finite-key.md) and behind `qkdctl sim bound`. `finiteSize`
    /// false gives the asymptotic version of the same bounds.
    public static func optimised(_ physics: LinkPhysics, pulses: Double, epsSec: Double = 1e-10, epsCor: Double = 1e-15,
                                 finiteSize: Bool = true) -> (keyPerPulse: Double, parameters: Parameters, pX: Double, result: Result?) {
        var top: (keyPerPulse: Double, parameters: Parameters, pX: Double, result: Result?) =
            (0, Parameters(intensities: [0.5, 0.2, 0], probabilities: [0.5, 0.25, 0.25], epsSec: epsSec, epsCor: epsCor,
                           finiteSize: finiteSize), 0.9, nil)
        for mu1 in [0.3, 0.4, 0.5, 0.6, 0.7] {
            for mu2 in [0.05, 0.1, 0.15, 0.2, 0.3] {
                for p1 in [0.3, 0.4, 0.5, 0.6, 0.7, 0.8] {
                    for share in [0.3, 0.5, 0.7] {
                        let p2 = (1 - p1) * share
                        let parameters = Parameters(intensities: [mu1, mu2, 0], probabilities: [p1, p2, 1 - p1 - p2],
                                                    epsSec: epsSec, epsCor: epsCor, finiteSize: finiteSize)
                        guard parameters.problem == nil else { continue }
                        for pX in [0.7, 0.8, 0.85, 0.9, 0.95, 0.97] {
                            let result = keyLength(expectedCounts(physics, parameters, pX: pX, pulses: pulses), parameters)
                            let rate = Double(result.keyBits) / pulses
                            if rate > top.keyPerPulse { top = (rate, parameters, pX, result) }
                        }
                    }
                }
            }
        }
        return top
    }
}
