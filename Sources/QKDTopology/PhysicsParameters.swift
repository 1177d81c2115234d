/// The physics of one fibre link. Defaults are the InGaAs avalanche-photodiode set used across
/// the decoy-state literature (Ma, Qi, Zhao, Lo, PRA 72, 012326, 2005, and GYS-style systems):
/// 1 GHz source, 0.2 dB/km, η_Bob = 0.10, Y0 = 1e-6, e_d = 1.5 %, f = 1.16, μ = 0.5, ν = 0.1.
/// See docs/physics.md.
public struct PhysicsParameters: Hashable, Sendable, Codable {
    /// Pulses emitted per emulated second (Hz).
    public var sourceRateHz: Double = 1e9
    /// Fibre attenuation α (dB/km).
    public var lossDbPerKm: Double = 0.2
    /// η_Bob: detector efficiency times receiver transmittance.
    public var detectorEfficiency: Double = 0.10
    /// Y0: background (dark count) click probability per pulse.
    public var darkCountProbability: Double = 1e-6
    /// e_d: probability that a photon hits the wrong detector (misalignment).
    public var misalignment: Double = 0.015
    /// f: error-correction inefficiency used in key-rate formulas.
    public var ecEfficiency: Double = 1.16
    /// μ: mean photon number of signal pulses.
    public var signalIntensity: Double = 0.5
    /// ν: mean photon number of weak decoy pulses.
    public var decoyIntensity: Double = 0.1
    /// Probability that a pulse is a signal pulse.
    public var signalProbability: Double = 0.7
    /// Probability that a pulse is a weak decoy.
    public var decoyProbability: Double = 0.15
    /// Probability that a pulse is a vacuum decoy.
    public var vacuumProbability: Double = 0.15
    /// Whether the source sends decoy pulses at all (false: signal only, GLLP without decoys).
    public var decoyStates: Bool = true
    /// p_X: probability of the key basis X at both ends (efficient BB84; Z, the test basis,
    /// gets 1 − p_X and is revealed whole). 0.9 is near the optimum of Lim et al. (2014) for the
    /// default set at 50 km and 10^10 pulses (docs/physics.md).
    public var xBasisProbability: Double = 0.9
    /// ε_sec and ε_cor of the composable finite-key bound (Lim et al. 2014).
    public var epsSec: Double = 1e-10
    public var epsCor: Double = 1e-15
    /// Which key-length bound privacy amplification uses (`finite_key`).
    public var finiteKey: FiniteKeyBound = .lim2014
    /// Sifted key-basis bits per block (`block_key_bits`): the unit of parameter estimation,
    /// error correction and privacy amplification. Lim et al.'s bound needs a few million for
    /// a positive key at the default set (about 3·10^8 pulses at 25 km, docs/physics.md).
    public var blockKeyBitsValue: Double = 4_194_304
    public var blockKeyBits: Int { Int(blockKeyBitsValue) }
    /// Pulses per block (`block_pulses`, Lim et al.'s N): when set, blocks close by pulses
    /// instead of by key bits (0: unset).
    public var blockPulsesValue: Double = 0
    public var blockPulses: UInt64? { blockPulsesValue > 0 ? UInt64(blockPulsesValue) : nil }
    /// Keys each end of the link's pool holds at most (`max_key_count`); new keys beyond it
    /// are dropped and counted.
    public var maxKeyCountValue: Double = 100_000
    public var maxKeyCount: Int { Int(maxKeyCountValue) }

    public init() {}

    /// A numeric field of the topology format: its YAML key, where it lives, and its legal range.
    public struct Field: Sendable {
        public let key: String
        public let keyPath: any WritableKeyPath<PhysicsParameters, Double> & Sendable
        public let lower: Double
        public let lowerInclusive: Bool
        public let upper: Double
        public let upperInclusive: Bool
        public let unit: String

        public func accepts(_ value: Double) -> Bool {
            guard value.isFinite else { return false }
            let aboveLower = lowerInclusive ? value >= lower : value > lower
            let belowUpper = upperInclusive ? value <= upper : value < upper
            return aboveLower && belowUpper
        }

        public var rangeDescription: String {
            "\(lowerInclusive ? "[" : "(")\(Self.format(lower)), \(Self.format(upper))\(upperInclusive ? "]" : ")")"
        }

        static func format(_ x: Double) -> String {
            x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
        }
    }

    /// Every numeric field, in documentation order.
    public static let fields: [Field] = [
        Field(key: "source_rate_hz", keyPath: \.sourceRateHz, lower: 0, lowerInclusive: false,
              upper: 1e11, upperInclusive: true, unit: "Hz"),
        Field(key: "loss_db_per_km", keyPath: \.lossDbPerKm, lower: 0, lowerInclusive: true,
              upper: 10, upperInclusive: true, unit: "dB/km"),
        Field(key: "detector_efficiency", keyPath: \.detectorEfficiency, lower: 0,
              lowerInclusive: false, upper: 1, upperInclusive: true, unit: "probability"),
        Field(key: "dark_count_probability", keyPath: \.darkCountProbability, lower: 0,
              lowerInclusive: true, upper: 1, upperInclusive: true, unit: "probability"),
        Field(key: "misalignment", keyPath: \.misalignment, lower: 0, lowerInclusive: true,
              upper: 0.5, upperInclusive: true, unit: "probability"),
        Field(key: "ec_efficiency", keyPath: \.ecEfficiency, lower: 1, lowerInclusive: true,
              upper: 3, upperInclusive: true, unit: "ratio"),
        Field(key: "signal_intensity", keyPath: \.signalIntensity, lower: 0,
              lowerInclusive: false, upper: 20, upperInclusive: true, unit: "photons/pulse"),
        Field(key: "decoy_intensity", keyPath: \.decoyIntensity, lower: 0, lowerInclusive: true,
              upper: 20, upperInclusive: true, unit: "photons/pulse"),
        Field(key: "signal_probability", keyPath: \.signalProbability, lower: 0,
              lowerInclusive: false, upper: 1, upperInclusive: true, unit: "probability"),
        Field(key: "decoy_probability", keyPath: \.decoyProbability, lower: 0,
              lowerInclusive: true, upper: 1, upperInclusive: true, unit: "probability"),
        Field(key: "vacuum_probability", keyPath: \.vacuumProbability, lower: 0,
              lowerInclusive: true, upper: 1, upperInclusive: true, unit: "probability"),
        Field(key: "max_key_count", keyPath: \.maxKeyCountValue, lower: 1024, lowerInclusive: true,
              upper: 10_000_000, upperInclusive: true, unit: "keys"),
        Field(key: "x_basis_probability", keyPath: \.xBasisProbability, lower: 0, lowerInclusive: false,
              upper: 1, upperInclusive: false, unit: "probability"),
        Field(key: "eps_sec", keyPath: \.epsSec, lower: 0, lowerInclusive: false, upper: 1, upperInclusive: false, unit: "probability"),
        Field(key: "eps_cor", keyPath: \.epsCor, lower: 1e-24, lowerInclusive: true, upper: 1, upperInclusive: false, unit: "probability"),
        Field(key: "block_key_bits", keyPath: \.blockKeyBitsValue, lower: 4096, lowerInclusive: true, upper: 67_108_864,
              upperInclusive: true, unit: "bits"),
        Field(key: "block_pulses", keyPath: \.blockPulsesValue, lower: 0, lowerInclusive: true, upper: 1e14,
              upperInclusive: true, unit: "pulses (0: blocks by block_key_bits)"),
    ]

    /// The YAML key of the boolean decoy switch.
    public static let decoyStatesKey = "decoy_states"

    /// The YAML key of the key-length bound.
    public static let finiteKeyKey = "finite_key"

    /// Every key a `physics` mapping may hold.
    public static var allKeys: [String] { fields.map(\.key) + [decoyStatesKey, finiteKeyKey] }
}

/// The bound privacy amplification sizes a block by (`finite_key` in a topology).
public enum FiniteKeyBound: String, Hashable, Sendable, Codable, CaseIterable {
    /// The composable finite-key bound of Lim, Curty, Walenta, Xu, Zbinden, PRA 89, 022307
    /// (2014): Hoeffding bounds on the decoy counts, the phase-error sampling term, ε_sec and
    /// ε_cor. The default.
    case lim2014
    /// The same decoy bounds on the measured counts with no finite-size terms and no ε: the
    /// asymptotic key rate, labelled as such everywhere it shows (a link without decoys always
    /// uses GLLP's asymptotic formula).
    case asymptotic
}
