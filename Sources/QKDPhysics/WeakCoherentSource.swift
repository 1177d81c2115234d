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
/// Two kinds of randomness (docs/security.md): the class, the basis (X with probability p_X
/// from the low half of `PulseHash(choices)`'s word for pulse i, announced in sifting anyway), arrivals and photon numbers are
/// physics and come from the seeded streams; the bit value of every pulse that can click at
/// Bob is a secret, drawn from `values` (the OS CSPRNG unless the run is reproducible).
///
/// The emulated channel also carries where Bob's detectors will fire by themselves (dark
/// counts, probability Y0 per pulse, seeded): those pulses are entries of the frame with the
/// `ArrivalBatch.darkCount` flag, with zero photons when nothing arrived. A click's error is
/// then a function of physics alone (a dark click's bit is the entry's value XOR a seeded coin),
/// so a secret run and a reproducible run with one seed see the same errors; only the bit
/// values differ.
public struct WeakCoherentSource: Sendable {
    public let settings: SourceSettings
    public let choices: PulseHash
    private var rng: Xoshiro256
    private var values: SecretRandom

    public init(settings: SourceSettings, choices: PulseHash, rng: Xoshiro256, values: SecretRandom) {
        self.settings = settings
        self.choices = choices
        self.rng = rng
        self.values = values
    }

    /// Emits pulses [frameStart, frameStart + pulses) into a channel of transmittance `t`
    /// whose receiver has background clicks with probability `darkCountProbability` per pulse,
    /// and returns what arrives at its end plus Alice's private record of the frame.
    public mutating func emit(frameStart: UInt64, pulses: UInt32, transmittance t: Double, darkCountProbability y0: Double = 0)
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
        let stayTotal = stay.reduce(0, +)
        let stayWeights = stayTotal > 0 ? stay.map { $0 / stayTotal } : settings.probabilities
        let darks = WeakCoherentSource.darkPositions(pulses: pulses, probability: y0, &rng)
        var arrivals = ArrivalBatch()
        arrivals.reserve(Int(Double(pulses) * p * 1.1) + darks.count + 16)
        var entryClasses: [UInt8] = []
        entryClasses.reserveCapacity(arrivals.offsets.capacity)
        var counts = [UInt64](repeating: 0, count: classes)
        var darkOnly: UInt64 = 0
        var d = 0
        /// Dark-only entries before `limit`: the class of a pulse with no arrival, P(c | none).
        func darksBefore(_ limit: UInt32) {
            while d < darks.count && darks[d] < limit {
                let c = WeakCoherentSource.pick(stayWeights, rng.nextUnitDouble())
                arrivals.append(offset: darks[d], photons: 0, state: ArrivalBatch.darkCount)
                entryClasses.append(UInt8(c))
                counts[c] += 1
                darkOnly += 1
                d += 1
            }
        }
        var position = -1.0
        let end = Double(pulses)
        while true {
            position += Sampling.geometricGap(logComplement: lc, &rng) + 1
            if position >= end { break }
            let offset = UInt32(position)
            darksBefore(offset)
            var u = rng.nextUnitDouble() * p
            var c = 0
            while c < classes - 1 && u >= arrivalProbability[c] {
                u -= arrivalProbability[c]
                c += 1
            }
            let n = Sampling.zeroTruncatedPoisson(lambda[c], &rng)
            var flags: UInt8 = 0
            if d < darks.count && darks[d] == offset {
                flags = ArrivalBatch.darkCount
                d += 1
            }
            arrivals.append(offset: offset, photons: UInt8(min(n, 255)), state: flags)
            entryClasses.append(UInt8(c))
            counts[c] += 1
        }
        darksBefore(UInt32.max)
        // Classes of the other pulses that sent nothing through: multinomial with P(c | no arrival).
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
        // The states: the basis is physics, the value a secret (one word per 64 entries, drawn
        // in one call whatever the mode).
        let secret = values.words((arrivals.count + 63) / 64)
        var entryValues = [UInt8](repeating: 0, count: arrivals.count)
        let xThreshold = SourceSettings.xThreshold(settings.xProbability)
        for i in 0..<arrivals.count {
            let basis = SourceSettings.basis(word: choices.word(frameStart &+ UInt64(arrivals.offsets[i])), xThreshold: xThreshold)
            let value = UInt8(truncatingIfNeeded: secret[i >> 6] >> UInt64(i & 63)) & 1
            entryValues[i] = value
            arrivals.states[i] |= value | basis << 1
        }
        let record = EmissionRecord(frameStart: frameStart, pulses: pulses, entryOffsets: arrivals.offsets,
                                    entryClasses: entryClasses, entryValues: entryValues, classCounts: counts,
                                    noArrivalClassWeights: stayWeights, choices: choices, xThreshold: xThreshold)
        return (arrivals, record)
    }

    /// Index of the interval of `weights` (summing to 1) that `u` in [0, 1) falls in.
    static func pick(_ weights: [Double], _ u: Double) -> Int {
        var u = u
        var c = 0
        while c < weights.count - 1 && u >= weights[c] {
            u -= weights[c]
            c += 1
        }
        return c
    }

    /// Pulses of a frame at which the receiver's detectors click by themselves: each pulse
    /// with probability Y0, independently (geometric gaps).
    static func darkPositions(pulses: UInt32, probability y0: Double, _ rng: inout Xoshiro256) -> [UInt32] {
        guard y0 > 0 else { return [] }
        let lc = Sampling.logComplement(y0)
        var out: [UInt32] = []
        out.reserveCapacity(Int(Double(pulses) * y0 * 1.2) + 4)
        var position = -1.0
        while true {
            position += Sampling.geometricGap(logComplement: lc, &rng) + 1
            if position >= Double(pulses) { return out }
            out.append(UInt32(position))
        }
    }
}

/// Alice's private record of one frame: enough to answer, for any pulse Bob clicked on, with
/// its class, basis and value, and to announce how many pulses of each class she sent.
public struct EmissionRecord: Sendable {
    public let frameStart: UInt64
    public let pulses: UInt32
    /// The frame's entries (arrivals and dark-count pulses), increasing, with class and value.
    let entryOffsets: [UInt32]
    let entryClasses: [UInt8]
    let entryValues: [UInt8]
    public let classCounts: [UInt64]
    let noArrivalClassWeights: [Double]
    let choices: PulseHash
    let xThreshold: UInt64

    /// Class, basis and value of the pulses at `offsets` (strictly increasing, each below
    /// `pulses`), by merging with the entry list. A pulse that was no entry (a click no
    /// honest receiver reports: nothing arrived and no dark count fired) gets a class from
    /// P(c | no arrival) and a fresh secret value from `secrets`: its value never left Alice.
    public func pulses(at offsets: [UInt32], secrets: inout SecretRandom) -> (classes: [UInt8], bases: [UInt8], values: [UInt8]) {
        var classes = [UInt8](repeating: 0, count: offsets.count)
        var bases = [UInt8](repeating: 0, count: offsets.count)
        var values = [UInt8](repeating: 0, count: offsets.count)
        var j = 0
        for (i, offset) in offsets.enumerated() {
            let word = choices.word(frameStart &+ UInt64(offset))
            bases[i] = SourceSettings.basis(word: word, xThreshold: xThreshold)
            while j < entryOffsets.count && entryOffsets[j] < offset { j += 1 }
            if j < entryOffsets.count && entryOffsets[j] == offset {
                classes[i] = entryClasses[j]
                values[i] = entryValues[j]
            } else {
                classes[i] = UInt8(WeakCoherentSource.pick(noArrivalClassWeights, Double(word >> 32) * 0x1.0p-32))
                values[i] = UInt8(secrets.next() & 1)
            }
        }
        return (classes, bases, values)
    }
}
