/// A BB84 basis: rectilinear (Z) or diagonal (X).
public enum Basis: UInt8, Sendable, CaseIterable {
    case z = 0
    case x = 1
}

/// Which intensity a pulse was prepared with.
public enum PulseClass: Int, Sendable, CaseIterable, CustomStringConvertible {
    case signal = 0
    case decoy = 1
    case vacuum = 2

    public var description: String {
        switch self {
        case .signal: "signal"
        case .decoy: "decoy"
        case .vacuum: "vacuum"
        }
    }
}

/// The source's intensities and how often each is sent.
public struct SourceSettings: Sendable, Equatable {
    /// Mean photon numbers, indexed by `PulseClass.rawValue` (vacuum is 0).
    public var intensities: [Double]
    /// Probabilities, indexed by `PulseClass.rawValue`; they sum to 1.
    public var probabilities: [Double]
    /// p_X: probability that Alice prepares (and Bob measures) in the X basis, the key basis of
    /// efficient BB84 (Lo, Chau, Ardehali, J. Cryptology 18, 133, 2005; Lim et al. 2014); Z, the
    /// test basis, has 1 − p_X.
    public var xProbability: Double

    /// Signal μ, decoy ν, vacuum; with `decoyStates == false` every pulse is a signal pulse.
    public init(signal: Double, decoy: Double, signalProbability: Double, decoyProbability: Double,
                vacuumProbability: Double, decoyStates: Bool = true, xProbability: Double = 0.5) {
        intensities = [signal, decoy, 0]
        self.xProbability = xProbability
        probabilities = decoyStates ? [signalProbability, decoyProbability, vacuumProbability] : [1, 0, 0]
    }

    public var decoyStates: Bool { probabilities[1] > 0 || probabilities[2] > 0 }

    /// The basis (`Basis.rawValue`) a per-pulse hash word selects: X when its low 32 bits fall
    /// below p_X · 2^32. Alice's choice and Bob's use the same rule on their own hashes.
    @inlinable
    public static func basis(word: UInt64, xThreshold: UInt64) -> UInt8 { word & 0xFFFF_FFFF < xThreshold ? 1 : 0 }

    /// p_X · 2^32, the threshold of `basis(word:xThreshold:)`.
    public static func xThreshold(_ pX: Double) -> UInt64 { UInt64((min(1, max(0, pX)) * 0x1.0p32).rounded()) }
}

/// Photons arriving at the end of a channel segment during one frame: pulses with at least
/// one photon there, in increasing pulse order (structure of arrays), and the pulses at which
/// the receiver's detectors fire by themselves (`darkCount`, possibly with zero photons). The
/// `states` byte holds the pulse's polarisation: bit 0 the encoded value, bit 1 the basis; bit 2
/// is the dark-count flag. It is the physical state in flight: a receiver learns about it only
/// through a measurement model.
public struct ArrivalBatch: Sendable, Equatable {
    public var offsets: [UInt32] = []
    public var photons: [UInt8] = []
    public var states: [UInt8] = []

    /// Flag in `states`: the receiver's detectors click by themselves at this pulse.
    public static let darkCount: UInt8 = 4

    public init() {}

    public init(offsets: [UInt32], photons: [UInt8], states: [UInt8]) {
        self.offsets = offsets
        self.photons = photons
        self.states = states
    }

    public var count: Int { offsets.count }

    public mutating func reserve(_ n: Int) {
        offsets.reserveCapacity(n)
        photons.reserveCapacity(n)
        states.reserveCapacity(n)
    }

    @inlinable
    public mutating func append(offset: UInt32, photons n: UInt8, state: UInt8) {
        offsets.append(offset)
        photons.append(n)
        states.append(state)
    }
}

/// Bob's clicks in one frame, in increasing pulse order: where, in which basis, which bit.
public struct DetectionBatch: Sendable, Equatable {
    public var offsets: [UInt32] = []
    public var bases: [UInt8] = []
    public var bits: [UInt8] = []
    /// Pulses where both detectors clicked (assigned a random bit: squashing).
    public var doubleClicks = 0
    /// Clicks caused by dark counts alone.
    public var darkOnlyClicks = 0

    public init() {}

    public var count: Int { offsets.count }
}
