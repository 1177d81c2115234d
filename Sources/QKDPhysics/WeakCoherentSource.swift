import QKDCore
#if canImport(Glibc)
import Glibc
#endif

/// Alice's laser: phase-randomised weak coherent pulses, each of a randomly chosen intensity
/// class, with a random bit value in a random basis. Photon numbers are Poisson(μ_c); photons
/// surviving a channel of transmittance t are Poisson(μ_c t) by thinning, so only pulses with
/// at least one surviving photon are ever sampled: per pulse the probability of an arrival is
/// p = Σ_c P(c)(1 − e^(−μ_c t)), the gap to the next arrival is geometric, the class given an
/// arrival has probability P(c)(1 − e^(−μ_c t))/p, and the photon count is a zero-truncated
/// Poisson(μ_c t). Cost grows with arrivals, not pulses.
///
/// Value and basis of pulse i come from `PulseHash(choices).word(i)` (bits 0 and 1), so Alice
/// can answer for any pulse later; the class of a pulse without an arrival (a pulse that can
/// only click through a dark count) comes from the same word's upper bits, drawn from
/// P(c | no arrival).
public struct WeakCoherentSource: Sendable {
    public let settings: SourceSettings
    public let choices: PulseHash
    private var rng: Xoshiro256

    public init(settings: SourceSettings, choices: PulseHash, rng: Xoshiro256) {
        self.settings = settings
        self.choices = choices
        self.rng = rng
    }

    /// Emits pulses [frameStart, frameStart + pulses) into a channel of transmittance `t`
    /// and returns what arrives at its end plus Alice's private record of the frame.
    public mutating func emit(frameStart: UInt64, pulses: UInt32, transmittance t: Double)
        -> (arrivals: ArrivalBatch, record: EmissionRecord)
    {
        let classes = PulseClass.allCases.count
        var arrivalProbability = [Double](repeating: 0, count: classes)
        var lambda = [Double](repeating: 0, count: classes)
        var stay = [Double](repeating: 0, count: classes)
        for c in 0..<classes {
            lambda[c] = settings.intensities[c] * t
            arrivalProbability[c] = settings.probabilities[c] * -expm1(-lambda[c])
            stay[c] = settings.probabilities[c] * exp(-lambda[c])
        }
        let p = arrivalProbability.reduce(0, +)
        let lc = Sampling.logComplement(p)
        var arrivals = ArrivalBatch()
        arrivals.reserve(Int(Double(pulses) * p * 1.1) + 16)
        var arrivalClasses: [UInt8] = []
        arrivalClasses.reserveCapacity(arrivals.offsets.capacity)
        var counts = [UInt64](repeating: 0, count: classes)
        var position = -1.0
        let end = Double(pulses)
        while true {
            position += Sampling.geometricGap(logComplement: lc, &rng) + 1
            if position >= end { break }
            let offset = UInt32(position)
            var u = rng.nextUnitDouble() * p
            var c = 0
            while c < classes - 1 && u >= arrivalProbability[c] {
                u -= arrivalProbability[c]
                c += 1
            }
            let n = Sampling.zeroTruncatedPoisson(lambda[c], &rng)
            let word = choices.word(frameStart &+ UInt64(offset))
            arrivals.append(offset: offset, photons: UInt8(min(n, 255)), state: UInt8(word & 3))
            arrivalClasses.append(UInt8(c))
            counts[c] += 1
        }
        // Classes of the pulses that sent nothing through: multinomial with P(c | no arrival).
        let stayTotal = stay.reduce(0, +)
        var remaining = UInt64(pulses) - UInt64(arrivals.count)
        var left = stayTotal
        for c in 0..<classes {
            guard remaining > 0 else { break }
            if c == classes - 1 || left <= 0 {
                counts[c] += remaining
                remaining = 0
                break
            }
            let k = Sampling.binomial(remaining, min(1, stay[c] / left), &rng)
            counts[c] += k
            remaining -= k
            left -= stay[c]
        }
        let record = EmissionRecord(frameStart: frameStart, pulses: pulses, arrivalOffsets: arrivals.offsets,
                                    arrivalClasses: arrivalClasses, classCounts: counts,
                                    noArrivalClassWeights: stayTotal > 0 ? stay.map { $0 / stayTotal } : settings.probabilities,
                                    choices: choices)
        return (arrivals, record)
    }
}

/// Alice's private record of one frame: enough to answer, for any pulse Bob clicked on, with
/// its class, basis and value, and to announce how many pulses of each class she sent.
public struct EmissionRecord: Sendable {
    public let frameStart: UInt64
    public let pulses: UInt32
    let arrivalOffsets: [UInt32]
    let arrivalClasses: [UInt8]
    public let classCounts: [UInt64]
    let noArrivalClassWeights: [Double]
    let choices: PulseHash

    /// Class, basis and value of the pulses at `offsets` (strictly increasing, each below
    /// `pulses`), by merging with the arrival list.
    public func pulses(at offsets: [UInt32]) -> (classes: [UInt8], bases: [UInt8], values: [UInt8]) {
        var classes = [UInt8](repeating: 0, count: offsets.count)
        var bases = [UInt8](repeating: 0, count: offsets.count)
        var values = [UInt8](repeating: 0, count: offsets.count)
        var j = 0
        for (i, offset) in offsets.enumerated() {
            let word = choices.word(frameStart &+ UInt64(offset))
            values[i] = UInt8(word & 1)
            bases[i] = UInt8((word >> 1) & 1)
            while j < arrivalOffsets.count && arrivalOffsets[j] < offset { j += 1 }
            if j < arrivalOffsets.count && arrivalOffsets[j] == offset {
                classes[i] = arrivalClasses[j]
            } else {
                var u = Double(word >> 11) * 0x1.0p-53
                var c = 0
                while c < noArrivalClassWeights.count - 1 && u >= noArrivalClassWeights[c] {
                    u -= noArrivalClassWeights[c]
                    c += 1
                }
                classes[i] = UInt8(c)
            }
        }
        return (classes, bases, values)
    }
}
