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
    ]

    /// The YAML key of the boolean decoy switch.
    public static let decoyStatesKey = "decoy_states"

    /// Every key a `physics` mapping may hold.
    public static var allKeys: [String] { fields.map(\.key) + [decoyStatesKey] }
}
