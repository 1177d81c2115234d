/// The project's own pseudo-random generators. Both ends of a link must derive identical
/// sequences (shared shuffles, shared hash seeds), so nothing here may depend on the standard
/// library's generators or sampling algorithms, which can change between toolchains.

/// SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014). Used to expand seeds; also a fine generator on its own.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators",
/// ACM TOMS 47(4), 2021). The workhorse generator of every stochastic component.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64
    @usableFromInline var s1: UInt64
    @usableFromInline var s2: UInt64
    @usableFromInline var s3: UInt64

    /// Seeds the four state words from SplitMix64, as the authors recommend; the state is
    /// never all zero.
    public init(seed: UInt64) {
        var mix = SplitMix64(seed: seed)
        s0 = mix.next()
        s1 = mix.next()
        s2 = mix.next()
        s3 = mix.next()
        if s0 | s1 | s2 | s3 == 0 { s0 = 1 }
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inlinable
    func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

extension RandomNumberGenerator {
    /// A uniform double in [0, 1) from the top 53 bits.
    @inlinable
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform integer in [0, bound) by Lemire's multiply-shift with rejection
    /// ("Fast random integer generation in an interval", ACM TOMACS 29(1), 2019).
    /// The result is the same on every platform for the same generator state.
    @inlinable
    public mutating func nextBounded(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bound must be positive")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = next().multipliedFullWidth(by: bound)
            }
        }
        return product.high
    }

    /// Fisher–Yates shuffle driven only by `nextBounded`, so two processes with the same
    /// generator state produce the same permutation.
    @inlinable
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        var i = array.count - 1
        while i > 0 {
            let j = Int(nextBounded(UInt64(i + 1)))
            array.swapAt(i, j)
            i -= 1
        }
    }
}
