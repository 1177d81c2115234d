/// Where a run's secret randomness comes from. Physics randomness (which pulses arrive,
/// detector noise, dark counts, Eve's outcomes) is always seeded; secret randomness (Alice's
/// bit values, the estimation sample, verification and privacy-amplification seeds, key IDs,
/// bootstrap keys) comes from the operating system's CSPRNG unless a run asks to be
/// reproducible (docs/security.md).
public enum Secrecy: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// Secrets from the OS CSPRNG: two runs with one seed have the same statistics and
    /// different keys.
    case secret
    /// Secrets from the seed tree as well: a run is reproducible bit for bit, and its keys
    /// are computable by anyone holding the topology file. For experiments and tests only.
    case reproducible

    public var description: String { rawValue }
}

/// A generator of secret bits handed to a protocol core by its shell: the OS CSPRNG
/// (`SystemRandomNumberGenerator`: `getrandom(2)` on Linux), or, for a reproducible run, a
/// seeded xoshiro256** stream. Cores take it as a parameter and never reach for a global
/// generator; what they draw from it is the same sequence of calls in both modes, so a
/// reproducible run and a secret run differ only in the values.
public struct SecretRandom: Sendable {
    enum Source: Sendable {
        case system
        case seeded(Xoshiro256)
    }

    var source: Source

    /// The OS CSPRNG.
    public static var system: SecretRandom { SecretRandom(source: .system) }

    /// A reproducible stream (never for keys anyone relies on).
    public static func seeded(_ seed: UInt64) -> SecretRandom { SecretRandom(source: .seeded(Xoshiro256(seed: seed))) }

    /// The CSPRNG for `.secret`, the stream `label` of `seeds` for `.reproducible`.
    public static func make(_ secrecy: Secrecy, seeds: SeedTree, label: String) -> SecretRandom {
        secrecy == .secret ? .system : .seeded(seeds.seed(for: label))
    }

    public var secrecy: Secrecy {
        if case .system = source { return .secret }
        return .reproducible
    }

    public mutating func next() -> UInt64 {
        var word: UInt64 = 0
        fill(&word, count: 1)
        return word
    }

    /// `count` fresh words.
    public mutating func words(_ count: Int) -> [UInt64] {
        guard count > 0 else { return [] }
        var out = [UInt64](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { fill(&$0[0], count: count) }
        return out
    }

    private mutating func fill(_ start: UnsafeMutablePointer<UInt64>, count: Int) {
        switch source {
        case .system:
            SecretRandom.systemFill(UnsafeMutableRawPointer(start), bytes: count * 8)
        case .seeded(var g):
            for i in 0..<count { start[i] = g.next() }
            source = .seeded(g)
        }
    }

    /// Fills `bytes` bytes (a multiple of 8) from the standard library's
    /// `SystemRandomNumberGenerator`, which is the kernel's CSPRNG (`getrandom(2)` on Linux,
    /// `arc4random_buf(3)` on Darwin) and traps rather than return weak bytes.
    static func systemFill(_ buffer: UnsafeMutableRawPointer, bytes: Int) {
        var g = SystemRandomNumberGenerator()
        let words = buffer.bindMemory(to: UInt64.self, capacity: bytes / 8)
        for i in 0..<bytes / 8 { words[i] = g.next() }
    }
}
