import QKDPhysics
import Testing

@Suite struct DecoyModelTests {
    /// The table of ../shared/reference/physics.md (default InGaAs set and superconducting set).
    static let table: [(km: Double, gain: Double, qber: Double, rate: Double, rateSNSPD: Double, plob: Double?)] = [
        (0, 4.877e-2, 0.0150, 9.74e-3, 7.03e-2, nil),
        (25, 1.569e-2, 0.0150, 3.05e-3, 2.15e-2, 5.48e-1),
        (50, 4.989e-3, 0.0151, 9.60e-4, 6.73e-3, 1.52e-1),
        (75, 1.581e-3, 0.0153, 3.02e-4, 2.12e-3, 4.64e-2),
        (100, 5.009e-4, 0.0160, 9.40e-5, 6.69e-4, 1.45e-2),
        (150, 5.100e-5, 0.0245, 7.65e-6, 6.67e-5, 1.44e-3),
        (175, 1.681e-5, 0.0438, 1.26e-6, 2.09e-5, 4.56e-4),
        (200, 6.000e-6, 0.0958, 0, 6.48e-6, 1.44e-4),
    ]

    func close(_ a: Double, _ b: Double, _ tolerance: Double) -> Bool {
        b == 0 ? abs(a) < 1e-12 : abs(a / b - 1) <= tolerance
    }

    @Test func analyticModelReproducesTheReferenceTable() {
        for row in Self.table {
            let m = DecoyStateModel(LinkPhysics(lengthKm: row.km))
            #expect(close(m.gain(0.5), row.gain, 0.002), "Q_μ at \(row.km) km: \(m.gain(0.5))")
            #expect(close(m.errorRate(0.5), row.qber, 0.005), "E_μ at \(row.km) km: \(m.errorRate(0.5))")
            #expect(close(m.keyRatePerPulse, row.rate, 0.005), "R at \(row.km) km: \(m.keyRatePerPulse)")
            let snspd = DecoyStateModel(LinkPhysics(lengthKm: row.km, detectorEfficiency: 0.6, darkCountProbability: 1e-7,
                                                    misalignment: 0.01, ecEfficiency: 1.10))
            #expect(close(snspd.keyRatePerPulse, row.rateSNSPD, 0.005), "R_SNSPD at \(row.km) km: \(snspd.keyRatePerPulse)")
            if let plob = row.plob { #expect(close(m.plobBound, plob, 0.005), "PLOB at \(row.km) km") }
        }
    }

    @Test func maximumDistancesMatchTheReference() {
        func reach(_ rate: (Double) -> Double) -> Double {
            var lo = 0.0, hi = 400.0
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                if rate(mid) > 0 { lo = mid } else { hi = mid }
            }
            return lo
        }
        let decoy = reach { DecoyStateModel(LinkPhysics(lengthKm: $0)).keyRatePerPulse }
        // Without decoys the best μ is of the order of the transmittance: optimise it.
        let noDecoy = reach { km in
            (1...400).map { DecoyStateModel(LinkPhysics(lengthKm: km, signalIntensity: Double($0) * 0.0005)).keyRatePerPulseWithoutDecoys }.max()!
        }
        #expect(abs(decoy - 188) < 3, "decoy reach \(decoy) km")
        // The reference quotes about 58 km; GLLP with optimal μ and these parameters gives
        // about 72 km (see docs/physics.md). Either way it is far below the decoy reach.
        #expect(noDecoy > 50 && noDecoy < 80, "no-decoy reach \(noDecoy) km")
        #expect(DecoyStateModel(LinkPhysics(lengthKm: 0)).keyRatePerPulseWithoutDecoys == 0, "μ = 0.5 gives no key without decoys")
    }

    @Test func binaryEntropyAndThresholds() {
        #expect(binaryEntropy(0) == 0)
        #expect(binaryEntropy(0.5) == 1)
        #expect(abs(binaryEntropy(0.11) - 0.4999) < 1e-3)
        // Key vanishes near 11% QBER with f = 1 for ideal single photons (Shor–Preskill).
        let r = KeyRate.gllpDecoy(q: 1, f: 1, gainSignal: 1, errorSignal: 0.1100, singlePhotonGain: 1, singlePhotonError: 0.1100)
        #expect(r > 0 && r < 0.002)
        #expect(KeyRate.gllpDecoy(q: 1, f: 1, gainSignal: 1, errorSignal: 0.111, singlePhotonGain: 1, singlePhotonError: 0.111) == 0)
    }
}
