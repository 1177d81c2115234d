import QKDCore
#if canImport(Glibc)
import Glibc
#endif

/// Samplers built only on the project's generators, so two runs with one seed agree exactly.
public enum Sampling {
    /// Number of failures before the first success of a Bernoulli(p) sequence, by inversion:
    /// ⌊ln U / ln(1 − p)⌋. Returned as a Double so that huge gaps (tiny p) never overflow;
    /// +∞ when p is 0.
    @inlinable
    public static func geometricGap<G: RandomNumberGenerator>(logComplement: Double, _ g: inout G) -> Double {
        guard logComplement < 0 else { return .infinity }
        let u = 1 - g.nextUnitDouble()  // (0, 1]
        return (log(u) / logComplement).rounded(.down)
    }

    /// ln(1 − p), the argument `geometricGap` takes.
    @inlinable
    public static func logComplement(_ p: Double) -> Double { p >= 1 ? -.infinity : log1p(-p) }

    /// A Poisson(λ) count conditioned on being at least 1, by inversion of the truncated
    /// distribution P(n) = e^(−λ) λ^n / (n! (1 − e^(−λ))), n ≥ 1.
    @inlinable
    public static func zeroTruncatedPoisson<G: RandomNumberGenerator>(_ lambda: Double, _ g: inout G) -> Int {
        let norm = -expm1(-lambda)
        guard norm > 0 else { return 1 }
        var u = g.nextUnitDouble() * norm
        var p = exp(-lambda) * lambda
        var n = 1
        while u > p && n < 200 {
            u -= p
            n += 1
            p *= lambda / Double(n)
        }
        return n
    }

    /// A Poisson(λ) count (Knuth's multiplication method for small λ, normal approximation
    /// with continuity correction above λ = 500).
    public static func poisson<G: RandomNumberGenerator>(_ lambda: Double, _ g: inout G) -> UInt64 {
        guard lambda > 0 else { return 0 }
        if lambda > 500 {
            return UInt64(max(0, (lambda + sqrt(lambda) * standardNormal(&g)).rounded()))
        }
        let limit = exp(-lambda)
        var product = g.nextUnitDouble()
        var n: UInt64 = 0
        while product > limit {
            n += 1
            product *= g.nextUnitDouble()
        }
        return n
    }

    /// Binomial(n, p). Exact (waiting-time method: geometric gaps between successes) while
    /// the expected count of the rarer outcome is below 100; above that, the normal
    /// approximation with continuity correction, whose error (skewness/√(np(1−p)) < 0.1 of
    /// one standard deviation) is far below the statistical precision of any estimate
    /// built on it. Documented in docs/physics.md.
    public static func binomial<G: RandomNumberGenerator>(_ n: UInt64, _ p: Double, _ g: inout G) -> UInt64 {
        guard n > 0, p > 0 else { return 0 }
        guard p < 1 else { return n }
        if p > 0.5 { return n - binomial(n, 1 - p, &g) }
        let mean = Double(n) * p
        if mean < 100 {
            let lc = log1p(-p)
            var position = -1.0
            var count: UInt64 = 0
            while true {
                position += geometricGap(logComplement: lc, &g) + 1
                if position >= Double(n) { return count }
                count += 1
            }
        }
        let sd = sqrt(mean * (1 - p))
        let x = (mean + sd * standardNormal(&g)).rounded()
        return UInt64(min(Double(n), max(0, x)))
    }

    /// A standard normal variate (Box–Muller).
    public static func standardNormal<G: RandomNumberGenerator>(_ g: inout G) -> Double {
        let u1 = 1 - g.nextUnitDouble()
        let u2 = g.nextUnitDouble()
        return sqrt(-2 * log(u1)) * cos(2 * Double.pi * u2)
    }
}

/// A random-access stream of 64-bit words: word(i) is a fixed function of (seed, i). A party
/// uses it for its per-pulse choices (bit value, basis), so it can answer for any pulse
/// without having stored a choice for every pulse of a gigahertz source.
/// The mixing function is SplitMix64's finalizer (Steele, Lea, Flood 2014).
public struct PulseHash: Sendable, Equatable {
    public let seed: UInt64

    public init(seed: UInt64) { self.seed = seed }

    @inlinable
    public func word(_ index: UInt64) -> UInt64 {
        var z = seed &+ index &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
