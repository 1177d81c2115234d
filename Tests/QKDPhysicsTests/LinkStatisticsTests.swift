import QKDCore
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing

/// Statistical agreement of the emulated link with the analytic model. Each run uses enough
/// pulses that the statistical error is about a quarter of the tolerance (the tolerance is
/// then a 4-sigma bound, or about 3 sigma for the QBERs, measured on the Z half of the sifted
/// bits: p_X = 1/2 here).
@Suite struct LinkStatisticsTests {
    struct Point: Sendable, CustomTestStringConvertible {
        let km: Double
        let pulses: UInt64
        var testDescription: String { "\(Int(km)) km" }
    }

    static let points = [
        Point(km: 0, pulses: 300_000_000),
        Point(km: 50, pulses: 3_000_000_000),
        Point(km: 100, pulses: 30_000_000_000),
        Point(km: 150, pulses: 300_000_000_000),
    ]

    static func run(km: Double, pulses: UInt64, seed: UInt64, decoy: Bool = true, sigma: Double = 0, mu: Double = 0.5) throws -> (LinkSimulation.Outcome, DecoyStateModel) {
        let physics = LinkPhysics(lengthKm: km, signalIntensity: mu)
        // Equal class probabilities: enough decoy statistics for the 5% bound check.
        let source = SourceSettings(signal: mu, decoy: 0.1, signalProbability: 1.0 / 3, decoyProbability: 1.0 / 3,
                                    vacuumProbability: 1.0 / 3, decoyStates: decoy)
        let config = BB84Configuration(pulsesPerFrame: 1 << 30, blockKeyBits: Int.max, source: source)
        let outcome = try LinkSimulation(physics: physics, configuration: config, seed: seed, secrecy: .secret, standardDeviations: sigma).run(pulses: pulses)
        return (outcome, DecoyStateModel(physics))
    }

    @Test(arguments: points)
    func gainAndQBERMatchTheModelWithinThreePercent(_ point: Point) throws {
        let (outcome, model) = try Self.run(km: point.km, pulses: point.pulses, seed: 1000 + UInt64(point.km))
        let e = outcome.estimates
        func rel(_ a: Double, _ b: Double) -> Double { abs(a / b - 1) }
        #expect(rel(e.gainSignal, model.gain(0.5)) < 0.03, "Q_μ \(e.gainSignal) vs \(model.gain(0.5))")
        #expect(rel(e.qberSignal, model.errorRate(0.5)) < 0.03, "E_μ \(e.qberSignal) vs \(model.errorRate(0.5))")
        #expect(rel(e.gainDecoy, model.gain(0.1)) < 0.03, "Q_ν \(e.gainDecoy) vs \(model.gain(0.1))")
        #expect(rel(e.qberDecoy, model.errorRate(0.1)) < 0.05, "E_ν \(e.qberDecoy) vs \(model.errorRate(0.1))")
        let bounds = model.asymptoticBounds
        #expect(rel(e.y1Lower, bounds.y1Lower) < 0.05, "Y1_L \(e.y1Lower) vs \(bounds.y1Lower)")
        #expect(rel(e.e1Upper, bounds.e1Upper) < 0.05, "e1_U \(e.e1Upper) vs \(bounds.e1Upper)")
        #expect(e.keyPerSignalPulse <= model.plobBound)
        // Every sifted Z bit was revealed, every X bit is key: with p_X = 1/2, half and half.
        let sifted = outcome.statistics.sifted.reduce(0, +), revealed = outcome.statistics.revealed.reduce(0, +)
        #expect(UInt64(outcome.keyBits) == sifted - revealed)
        #expect(abs(Double(revealed) / Double(sifted) - 0.5) < 0.01, "\(revealed) of \(sifted) revealed")
        // Fluctuation bounds only ever lower the certified key.
        let bounded = outcome.statistics.estimates(source: Self.source(decoy: true), ecEfficiency: 1.16, standardDeviations: 5)
        #expect(bounded.keyPerSignalPulse <= e.keyPerSignalPulse)
        #expect(bounded.y1Lower <= e.y1Lower && bounded.e1Upper >= e.e1Upper)
    }

    static func source(decoy: Bool) -> SourceSettings {
        SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 1.0 / 3, decoyProbability: 1.0 / 3, vacuumProbability: 1.0 / 3, decoyStates: decoy)
    }

    @Test func keyBitsDifferAtTheMeasuredQBER() throws {
        let physics = LinkPhysics(lengthKm: 25)
        let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
        let config = BB84Configuration(pulsesPerFrame: 1 << 24, blockKeyBits: 200_000, source: source)
        let outcome = try LinkSimulation(physics: physics, configuration: config, seed: 5, secrecy: .secret).run(pulses: 400_000_000, keepBlocks: true)
        #expect(outcome.blocks.count >= 2)
        let trueRate = Double(outcome.keyErrors) / Double(outcome.keyBits)
        #expect(abs(trueRate / outcome.estimates.qberSignal - 1) < 0.1, "key error rate \(trueRate) vs sample \(outcome.estimates.qberSignal)")
        for (alice, bob) in outcome.blocks {
            #expect(alice.index == bob.index)
            #expect(alice.key.count == bob.key.count)
            #expect(alice.statistics == bob.statistics)
        }
    }

    @Test func measuredKeyRateNeverExceedsPLOB() throws {
        var g = Xoshiro256(seed: 77)
        for trial in 0..<40 {
            let km = g.nextUnitDouble() * 250
            let physics = LinkPhysics(lengthKm: km, lossDbPerKm: 0.15 + g.nextUnitDouble() * 0.2,
                                      detectorEfficiency: 0.05 + g.nextUnitDouble() * 0.95,
                                      darkCountProbability: g.nextUnitDouble() * 1e-5, misalignment: g.nextUnitDouble() * 0.05,
                                      ecEfficiency: 1.0 + g.nextUnitDouble() * 0.2, signalIntensity: 0.2 + g.nextUnitDouble(),
                                      decoyIntensity: 0.05 + g.nextUnitDouble() * 0.1)
            let source = SourceSettings(signal: physics.signalIntensity, decoy: physics.decoyIntensity, signalProbability: 0.6,
                                        decoyProbability: 0.2, vacuumProbability: 0.2, decoyStates: trial % 4 != 0)
            let config = BB84Configuration(pulsesPerFrame: 1 << 22, blockKeyBits: Int.max, source: source)
            let outcome = try LinkSimulation(physics: physics, configuration: config, seed: UInt64(trial), secrecy: .secret).run(pulses: 20_000_000)
            let model = DecoyStateModel(physics)
            #expect(outcome.estimates.keyPerSignalPulse <= model.plobBound, "trial \(trial): \(km) km")
            #expect(model.keyRatePerPulse <= model.plobBound, "model, trial \(trial)")
        }
    }

    @Test func sameSeedSameRunDifferentSeedDifferentRun() throws {
        let a = try Self.run(km: 40, pulses: 50_000_000, seed: 3).0
        let b = try Self.run(km: 40, pulses: 50_000_000, seed: 3).0
        let c = try Self.run(km: 40, pulses: 50_000_000, seed: 4).0
        #expect(a.statistics == b.statistics)
        #expect(a.estimates == b.estimates)
        #expect(a.statistics != c.statistics)
    }

    @Test func withoutDecoysOnlySignalPulsesAreSent() throws {
        // μ = 0.02 at 10 km: small enough that some key survives photon-number splitting.
        let (outcome, model) = try Self.run(km: 10, pulses: 2_000_000_000, seed: 8, decoy: false, mu: 0.02)
        #expect(outcome.statistics.pulses[1] == 0 && outcome.statistics.pulses[2] == 0)
        #expect(outcome.statistics.pulses[0] == 2_000_000_000)
        #expect(model.keyRatePerPulseWithoutDecoys > 0)
        #expect(abs(outcome.estimates.keyPerSignalPulse / model.keyRatePerPulseWithoutDecoys - 1) < 0.1)
    }
}
