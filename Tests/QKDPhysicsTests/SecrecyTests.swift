import QKDCore
import QKDKeyPool
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing

/// Two kinds of randomness: the physics is seeded, Alice's bit values are secret. With one seed
/// and two different secret streams, Bob clicks on the same pulses in the same bases and every
/// click's error (his bit XOR her value) is the same; only the values differ.
@Suite struct SecrecyTests {
    /// One frame through the source and Bob's detector, with Alice's values from `values`.
    func frame(values: SecretRandom, photons t: Double = 0.05, dark: Double = 1e-4)
        -> (offsets: [UInt32], bases: [UInt8], errors: [UInt8], values: [UInt8], darkOnly: Int)
    {
        let seeds = SeedTree(root: 11)
        let settings = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
        var source = WeakCoherentSource(settings: settings, choices: PulseHash(seed: seeds.seed(for: "choices")),
                                        rng: seeds.stream("source"), values: values)
        var detector = ThresholdDetector(misalignment: 0.03, darkCountProbability: dark, bases: PulseHash(seed: seeds.seed(for: "bases")),
                                         rng: seeds.stream("detector"))
        let (arrivals, record) = source.emit(frameStart: 0, pulses: 1 << 20, transmittance: t, darkCountProbability: dark)
        let clicks = detector.detect(frameStart: 0, pulses: 1 << 20, arrivals: arrivals)
        var spare = SecretRandom.seeded(0)
        let alice = record.pulses(at: clicks.offsets, secrets: &spare)
        let errors = zip(clicks.bits, alice.values).map { $0 ^ $1 }
        return (clicks.offsets, clicks.bases, errors, alice.values, clicks.darkOnlyClicks)
    }

    @Test func errorsComeFromPhysicsAloneAndValuesFromSecrecy() {
        let a = frame(values: .system), b = frame(values: .system), r = frame(values: .seeded(3))
        #expect(a.offsets.count > 10_000 && a.darkOnly > 20, "\(a.offsets.count) clicks, \(a.darkOnly) dark only")
        #expect(a.offsets == b.offsets && a.offsets == r.offsets)
        #expect(a.bases == b.bases && a.bases == r.bases)
        #expect(a.errors == b.errors && a.errors == r.errors)
        #expect(a.errors.contains(1), "misalignment and dark counts make errors")
        // Values: fresh from the CSPRNG each time (two equal 10^4-bit strings: probability 2^-10^4).
        #expect(a.values != b.values && a.values != r.values)
        let ones = a.values.reduce(0) { $0 + Int($1) }
        #expect(abs(Double(ones) / Double(a.values.count) - 0.5) < 0.03, "\(ones) ones of \(a.values.count)")
    }

    @Test func reproducibleValuesRepeat() {
        #expect(frame(values: .seeded(3)).values == frame(values: .seeded(3)).values)
    }

    @Test func darkCountMarkersCrossTheWireAndAreChecked() throws {
        let frame = QuantumFrame(frameIndex: 1, frameStart: 0, pulses: 100, offsets: [3, 7], photons: [0, 2],
                                 states: [ArrivalBatch.darkCount | 1, 2])
        #expect(try QuantumFrame.decode(frame.encoded()) == frame)
        var bad = frame
        bad.states[0] = 1  // no photon and no dark count
        #expect(throws: WireError.self) { try QuantumFrame.decode(bad.encoded()) }
        bad.states[0] = 8
        #expect(throws: WireError.self) { try QuantumFrame.decode(bad.encoded()) }
    }

    @Test func bootstrapsRoundTripAndFreshOnesDiffer() throws {
        var random = SecretRandom.system
        let a = LinkBootstrap.random(&random), b = LinkBootstrap.random(&random)
        #expect(a != b && a.keys.count == LinkBootstrap.keyCount && a.keys[0].bits.count == LinkBootstrap.keyBits)
        #expect(try LinkBootstrap.decode(a.encoded()) == a)
        #expect(!"\(a)".contains("\(a.authenticationKey)"))
        var truncated = a.encoded()
        truncated.removeLast()
        #expect(throws: BootstrapError.self) { try LinkBootstrap.decode(truncated) }
        #expect(throws: BootstrapError.self) { try LinkBootstrap.decode(Array("not a bootstrap at all, really".utf8)) }
        let seeds = SeedTree(root: 9).child("link/A-B")
        #expect(LinkBootstrap.derived(linkSeeds: seeds) == LinkBootstrap.derived(linkSeeds: seeds))
    }

    /// A short 10 km link distilled in-process, with its secrets from `secrecy`.
    func distil(_ secrecy: Secrecy) throws -> LinkSimulation.Outcome {
        let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
        let config = BB84Configuration(pulsesPerFrame: 1 << 23, blockKeyBits: 100_000, source: source)
        let bound = DistillerConfiguration(source: source, ecEfficiency: 1.16).withAsymptoticBound().bound
        return try LinkSimulation(physics: LinkPhysics(lengthKm: 10), configuration: config, seed: 4, secrecy: secrecy, bound: bound)
            .run(pulses: 60_000_000)
    }

    @Test func secretRunsDistilDifferentKeysReproducibleRunsTheSame() throws {
        let a = try distil(.secret), b = try distil(.secret)
        let r = try distil(.reproducible), q = try distil(.reproducible)
        for o in [a, b, r, q] {
            #expect(o.keysMatch && !o.aliceKeys.isEmpty, "\(o.aliceKeys.count) keys")
        }
        #expect(a.statistics.clicks == b.statistics.clicks && a.statistics.sifted == r.statistics.sifted)
        let bitsA = Set(a.aliceKeys.map(\.bits.bits.words)), bitsB = Set(b.aliceKeys.map(\.bits.bits.words))
        #expect(bitsA.isDisjoint(with: bitsB) && Set(a.aliceKeys.map(\.id)).isDisjoint(with: b.aliceKeys.map(\.id)))
        #expect(r.aliceKeys.map(\.id) == q.aliceKeys.map(\.id) && r.aliceKeys.map(\.bits.bits) == q.aliceKeys.map(\.bits.bits))
    }
}
