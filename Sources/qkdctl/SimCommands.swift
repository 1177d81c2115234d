import ArgumentParser
import Foundation
import QKDCore
import QKDPhysics
import QKDPostProcessing
import QKDStore
import QKDTopology
import QKDWire

struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a link in-process, with the same instances live nodes use.",
        subcommands: [SimLink.self, SimBound.self, SimPass.self])
}

/// `qkdctl sim link`: one decoy-state BB84 link, deterministic for a seed.
struct SimLink: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Emulate one link for N pulses and compare what it measured with the analytic model.")

    @OptionGroup var fibre: FibreOptions
    @Option(help: "Pulses to emulate (e.g. 1e10).") var pulses: String = "1e9"
    @Option(help: "Root seed.") var seed: UInt64 = 1
    @Option(help: "Signal intensity μ.") var mu: Double = 0.5
    @Option(help: "Decoy intensity ν.") var nu: Double = 0.1
    @Option(name: .customLong("p-signal"), help: "Probability of a signal pulse.") var pSignal: Double = 0.7
    @Option(name: .customLong("p-decoy"), help: "Probability of a decoy pulse (vacuum: the rest).") var pDecoy: Double = 0.15
    @Flag(name: .customLong("no-decoy"), help: "Signal pulses only (GLLP without decoys).") var noDecoy = false
    @Option(name: .customLong("frame-pulses"), help: "Pulses per frame.") var framePulses: UInt32 = 1 << 26
    @Option(name: .customLong("block-bits"), help: "Sifted signal bits per block.") var blockBits: Int = 1 << 20
    @Option(name: .customLong("p-x"), help: "Probability p_X of the key basis X at both ends (Z, the test basis, is revealed whole).")
    var pX: Double = 0.9
    @Option(name: .customLong("finite-key"), help: "Key-length bound: lim2014 (composable, Lim et al. 2014) or asymptotic.")
    var finiteKey: String = "lim2014"
    @Option(name: .customLong("eps-sec"), help: "Secrecy parameter ε_sec of lim2014.") var epsSec: Double = 1e-10
    @Option(name: .customLong("eps-cor"), help: "Correctness parameter ε_cor of lim2014.") var epsCor: Double = 1e-15
    @Option(help: "Standard deviations u_α of the statistical-fluctuation bounds (0: asymptotic).") var sigma: Double = 5
    @Flag(help: "Secret randomness from the seed too: the same key bits every run (by default they come from the OS CSPRNG; the counts, QBER and leak are the same either way).")
    var reproducible = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard let n = Double(pulses), n >= 1, n <= 1e15 else { throw ValidationError("--pulses: expected a number in [1, 1e15], got '\(pulses)'") }
        _ = n
        try fibre.check()
        for (name, p) in [("--p-signal", pSignal), ("--p-decoy", pDecoy), ("--p-x", pX)] {
            guard (0...1).contains(p) else { throw ValidationError("\(name) must be in [0, 1], got \(p)") }
        }
        guard pSignal + pDecoy <= 1 + 1e-12, pSignal > 0 else { throw ValidationError("--p-signal + --p-decoy must be at most 1") }
        guard nu < mu, nu >= 0, mu > 0 else { throw ValidationError("need 0 ≤ ν < μ") }
        guard framePulses > 0, blockBits > 0 else { throw ValidationError("--frame-pulses and --block-bits must be positive") }
        guard ["lim2014", "asymptotic"].contains(finiteKey) else { throw ValidationError("--finite-key: expected lim2014 or asymptotic, got '\(finiteKey)'") }
        guard epsSec > 0, epsSec < 1, epsCor >= 1e-24, epsCor < 1 else { throw ValidationError("--eps-sec must be in (0, 1), --eps-cor in [1e-24, 1)") }
        guard pX > 0, pX < 1 else { throw ValidationError("--p-x must be in (0, 1)") }
        if !noDecoy, finiteKey == "lim2014", nu <= 0 || pDecoy <= 0 || pSignal + pDecoy >= 1 {
            throw ValidationError("lim2014 needs a weak decoy (ν > 0, --p-decoy > 0) and vacuum pulses (--p-signal + --p-decoy < 1)")
        }
    }

    func run() throws {
        let physics = fibre.physics(signalIntensity: mu, decoyIntensity: nu)
        let source = SourceSettings(signal: mu, decoy: nu, signalProbability: pSignal, decoyProbability: pDecoy,
                                    vacuumProbability: max(0, 1 - pSignal - pDecoy), decoyStates: !noDecoy, xProbability: pX)
        let configuration = BB84Configuration(pulsesPerFrame: framePulses, blockKeyBits: blockBits, source: source)
        let parameters = Lim2014.Parameters(intensities: source.intensities, probabilities: source.probabilities, epsSec: epsSec,
                                            epsCor: epsCor, finiteSize: finiteKey == "lim2014")
        let bound: DistillerConfiguration.LengthBound = noDecoy ? .gllpWithoutDecoys
            : finiteKey == "lim2014" ? .lim2014(parameters) : .asymptotic(parameters)
        let started = Date()
        guard sigma >= 0 else { throw ValidationError("--sigma must be ≥ 0") }
        let outcome = try LinkSimulation(physics: physics, configuration: configuration, seed: seed,
                                         secrecy: reproducible ? .reproducible : .secret, standardDeviations: sigma, bound: bound)
            .run(pulses: UInt64(Double(pulses)!))
        let report = SimLinkReport(physics: physics, source: source, seed: seed, secrecy: reproducible ? .reproducible : .secret,
                                   outcome: outcome)
        if json {
            try printJSON(report)
        } else {
            print(report.table)
            print(String(format: "wall time %.2f s", Date().timeIntervalSince(started)))
        }
    }
}

/// The JSON `qkdctl sim link --json` prints. Deterministic for a seed: no wall-clock values.
struct SimLinkReport: Encodable {
    var seed: UInt64
    var sigma: Double
    var distanceKm: Double
    var pulses: UInt64
    var signalPulses: UInt64
    var decoyStates: Bool
    var gainSignal: Double
    var qberSignal: Double
    var gainDecoy: Double
    var qberDecoy: Double
    var y0: Double
    var y1Lower: Double
    var e1Upper: Double
    var siftedBits: UInt64
    var keyPerPulseEstimate: Double
    var keyPerPulseModel: Double
    /// nil where the bound is unbounded (zero length).
    var plobPerPulse: Double?
    var model: ModelValues
    var keyBitsBeforeCorrection: Int
    var keyErrorsBeforeCorrection: Int
    var ecEfficiency: Double?
    var leakedBits: UInt64
    var finalKeyBits: UInt64
    var finalKeyPerPulse: Double
    var blocksFailedVerification: UInt64
    var keysIdenticalAtBothEnds: Bool
    var secrecy: String
    /// A keyed digest (HMAC-SHA-256 under the seed, folded to 64 bits) of Alice's final keys,
    /// in order: equal for equal keys, and nothing usable about them.
    var finalKeyDigest: String
    /// The bound over the whole run as one block of `pulses` pulses (nil without decoys).
    var finiteKey: FiniteKeyReport?

    struct ModelValues: Encodable {
        var gainSignal: Double
        var qberSignal: Double
        var gainDecoy: Double
        var qberDecoy: Double
        var y1Lower: Double
        var e1Upper: Double
        var y1: Double
        var e1: Double

        enum CodingKeys: String, CodingKey {
            case gainSignal = "gain_signal", qberSignal = "qber_signal", gainDecoy = "gain_decoy", qberDecoy = "qber_decoy"
            case y1Lower = "y1_lower", e1Upper = "e1_upper", y1, e1
        }
    }

    enum CodingKeys: String, CodingKey {
        case seed, sigma, pulses, y0, model, secrecy
        case finalKeyDigest = "final_key_digest", finiteKey = "finite_key"
        case distanceKm = "distance_km", signalPulses = "signal_pulses", decoyStates = "decoy_states"
        case gainSignal = "gain_signal", qberSignal = "qber_signal", gainDecoy = "gain_decoy", qberDecoy = "qber_decoy"
        case y1Lower = "y1_lower", e1Upper = "e1_upper", siftedBits = "sifted_bits"
        case keyPerPulseEstimate = "key_per_pulse_estimate", keyPerPulseModel = "key_per_pulse_model"
        case plobPerPulse = "plob_per_pulse"
        case keyBitsBeforeCorrection = "key_bits_before_correction", keyErrorsBeforeCorrection = "key_errors_before_correction"
        case ecEfficiency = "ec_efficiency", leakedBits = "leaked_bits", finalKeyBits = "final_key_bits"
        case finalKeyPerPulse = "final_key_per_pulse", blocksFailedVerification = "blocks_failed_verification"
        case keysIdenticalAtBothEnds = "keys_identical_at_both_ends"
    }

    init(physics: LinkPhysics, source: SourceSettings, seed: UInt64, secrecy: Secrecy, outcome: LinkSimulation.Outcome) {
        let model = DecoyStateModel(physics)
        let e = outcome.estimates
        self.seed = seed
        sigma = e.standardDeviations
        distanceKm = physics.lengthKm
        pulses = outcome.pulses
        signalPulses = outcome.statistics.pulses[0]
        decoyStates = source.decoyStates
        gainSignal = e.gainSignal
        qberSignal = e.qberSignal
        gainDecoy = e.gainDecoy
        qberDecoy = e.qberDecoy
        y0 = e.y0
        y1Lower = e.y1Lower
        e1Upper = e.e1Upper
        siftedBits = outcome.siftedBits
        keyPerPulseEstimate = e.keyPerSignalPulse
        keyPerPulseModel = source.decoyStates ? model.keyRatePerPulse : model.keyRatePerPulseWithoutDecoys
        plobPerPulse = model.plobBound.isFinite ? model.plobBound : nil
        let bounds = model.asymptoticBounds
        self.model = ModelValues(gainSignal: model.gain(physics.signalIntensity), qberSignal: model.errorRate(physics.signalIntensity),
                                 gainDecoy: model.gain(physics.decoyIntensity), qberDecoy: model.errorRate(physics.decoyIntensity),
                                 y1Lower: bounds.y1Lower, e1Upper: bounds.e1Upper, y1: model.singlePhotonYield, e1: model.singlePhotonError)
        keyBitsBeforeCorrection = outcome.keyBits
        keyErrorsBeforeCorrection = outcome.keyErrors
        let d = outcome.aliceDistillation ?? KeyDistiller.Counters()
        ecEfficiency = d.ecEfficiency
        leakedBits = d.leakedBits
        finalKeyBits = d.finalBits
        finalKeyPerPulse = outcome.pulses > 0 ? Double(d.finalBits) / Double(outcome.pulses) : 0
        blocksFailedVerification = d.blocksFailedVerification + (outcome.bobDistillation?.blocksFailedVerification ?? 0)
        keysIdenticalAtBothEnds = outcome.keysMatch
        self.secrecy = secrecy.rawValue
        let digester = KeyDigester(salt: seed)
        let digest = outcome.aliceKeys.reduce(UInt64(0)) { ($0 &* 0x100_0000_01B3) ^ digester.digest(id: $1.id, bits: $1.bits.bits) }
        finalKeyDigest = String(format: "%016llx", digest)
        finiteKey = outcome.wholeRun
    }

    var table: String {
        func row(_ name: String, _ measured: Double, _ modelValue: Double?) -> [String] {
            let m = modelValue.map { String(format: "%.4e", $0) } ?? "-"
            let dev = modelValue.map { $0 == 0 ? "-" : String(format: "%+.2f%%", (measured / $0 - 1) * 100) } ?? "-"
            return [name, String(format: "%.4e", measured), m, dev]
        }
        let rows: [[String]] = [
            ["quantity", "measured", "model", "deviation"],
            row("gain signal Q_μ", gainSignal, model.gainSignal),
            row("QBER signal E_μ", qberSignal, model.qberSignal),
            row("gain decoy Q_ν", gainDecoy, decoyStates ? model.gainDecoy : nil),
            row("QBER decoy E_ν", qberDecoy, decoyStates ? model.qberDecoy : nil),
            row("Y0", y0, nil),
            row("Y1 lower", y1Lower, decoyStates ? model.y1Lower : nil),
            row("e1 upper", e1Upper, decoyStates ? model.e1Upper : nil),
            row("key / signal pulse", keyPerPulseEstimate, keyPerPulseModel),
            row("PLOB / channel use", plobPerPulse ?? .infinity, nil),
            row("final key / pulse", finalKeyPerPulse, nil),
            row("EC efficiency f", ecEfficiency ?? 0, nil),
        ]
        return "link \(distanceKm) km, \(pulses) pulses (\(signalPulses) signal), seed \(seed), secrecy \(secrecy), sifted \(siftedBits) bits, "
            + "final key digest \(finalKeyDigest)\n"
            + (finiteKey.map { f in
                let eps = f.epsSec.map { String(format: ", ε_sec %.0e, ε_cor %.0e", $0, f.epsCor ?? 0) } ?? " (no ε: asymptotic)"
                return "whole run as one block, \(f.bound)\(eps): s_X,0 \(String(format: "%.4g", f.sX0)), s_X,1 \(String(format: "%.4g", f.sX1)), "
                    + "φ_X \(String(format: "%.4f", f.phiX)), λ_EC \(f.leakECBits), ℓ \(f.keyBits) bits "
                    + "(\(String(format: "%.3e", Double(f.keyBits) / Double(max(1, pulses)))) per pulse)\n"
            } ?? "")
            + StatusTable.table(rows)
    }
}

/// `qkdctl sim bound`: the Lim et al. (2014) key length on the counts a block should give on
/// average (no emulation), with the intensities, their probabilities and p_X chosen over the
/// grid of `Lim2014.optimised`. What `make plot` draws for N = 1e8, 1e10, 1e12.
struct SimBound: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bound",
        abstract: "Best expected finite-key length per pulse for a block of N pulses (analytic counts, optimised parameters).")

    @OptionGroup var fibre: FibreOptions
    @Option(help: "Pulses per block N (e.g. 1e10).") var pulses: String = "1e10"
    @Option(name: .customLong("finite-key"), help: "lim2014 (composable) or asymptotic (the same bounds without finite-size terms).")
    var finiteKey: String = "lim2014"
    @Option(name: .customLong("eps-sec"), help: "Secrecy parameter ε_sec.") var epsSec: Double = 1e-10
    @Option(name: .customLong("eps-cor"), help: "Correctness parameter ε_cor.") var epsCor: Double = 1e-15
    @Flag(name: .customLong("default-set"), help: "Evaluate the parameter set of `sim link` (μ [0.5, 0.1, 0], p [0.7, 0.15, 0.15], p_X 0.9; change it with --mu, --nu, --p-signal, --p-decoy, --p-x) instead of optimising.")
    var defaultSet = false
    @Option(help: "Signal intensity μ1 (with --default-set).") var mu: Double = 0.5
    @Option(help: "Decoy intensity μ2 (with --default-set; μ3 = 0).") var nu: Double = 0.1
    @Option(name: .customLong("p-signal"), help: "Probability of μ1 (with --default-set).") var pSignal: Double = 0.7
    @Option(name: .customLong("p-decoy"), help: "Probability of μ2 (with --default-set; vacuum: the rest).") var pDecoy: Double = 0.15
    @Option(name: .customLong("p-x"), help: "p_X (with --default-set).") var pX: Double = 0.9
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if defaultSet {
            let set = Lim2014.Parameters(intensities: [mu, nu, 0], probabilities: [pSignal, pDecoy, 1 - pSignal - pDecoy])
            if let problem = set.problem { throw ValidationError("--mu/--nu/--p-signal/--p-decoy: \(problem)") }
            guard pX > 0, pX < 1 else { throw ValidationError("--p-x must be in (0, 1), got \(pX)") }
        }
        guard let n = Double(pulses), n >= 1, n <= 1e16 else { throw ValidationError("--pulses: expected a number in [1, 1e16], got '\(pulses)'") }
        _ = n
        try fibre.check()
        guard ["lim2014", "asymptotic"].contains(finiteKey) else { throw ValidationError("--finite-key: expected lim2014 or asymptotic, got '\(finiteKey)'") }
        guard epsSec > 0, epsSec < 1, epsCor > 0, epsCor < 1 else { throw ValidationError("--eps-sec and --eps-cor must be in (0, 1)") }
    }

    struct Output: Encodable {
        var bound: String
        var distanceKm: Double
        var pulses: Double
        var epsSec: Double
        var epsCor: Double
        var keyPerPulse: Double
        var keyBits: Int
        var intensities: [Double]
        var probabilities: [Double]
        var pX: Double
        var plobPerPulse: Double?

        enum CodingKeys: String, CodingKey {
            case bound, pulses, intensities, probabilities
            case distanceKm = "distance_km", epsSec = "eps_sec", epsCor = "eps_cor", keyPerPulse = "key_per_pulse"
            case keyBits = "key_bits", pX = "p_x", plobPerPulse = "plob_per_pulse"
        }
    }

    func run() throws {
        let n = Double(pulses)!
        let physics = fibre.physics()
        var found = Lim2014.optimised(physics, pulses: n, epsSec: epsSec, epsCor: epsCor, finiteSize: finiteKey == "lim2014")
        if defaultSet {
            let set = Lim2014.Parameters(intensities: [mu, nu, 0], probabilities: [pSignal, pDecoy, 1 - pSignal - pDecoy],
                                         epsSec: epsSec, epsCor: epsCor, finiteSize: finiteKey == "lim2014")
            let result = Lim2014.keyLength(Lim2014.expectedCounts(physics, set, pX: pX, pulses: n), set)
            found = (Double(result.keyBits) / n, set, pX, result)
        }
        let plob = DecoyStateModel(physics).plobBound
        let out = Output(bound: finiteKey, distanceKm: fibre.distance, pulses: n, epsSec: epsSec, epsCor: epsCor, keyPerPulse: found.keyPerPulse,
                         keyBits: found.result?.keyBits ?? 0, intensities: found.parameters.intensities,
                         probabilities: found.parameters.probabilities, pX: found.pX, plobPerPulse: plob.isFinite ? plob : nil)
        if json {
            try printJSON(out)
        } else {
            print(String(format: "%@ at %.1f km, N = %.3g: %.4g bits/pulse (ℓ = %ld) with μ = %@, p = %@, p_X = %.2f",
                         finiteKey, fibre.distance, n, found.keyPerPulse, out.keyBits, "\(out.intensities)", "\(out.probabilities)", found.pX))
        }
    }
}

/// The fibre and detector options `sim link` and `sim bound` share (the default physics set).
struct FibreOptions: ParsableArguments {
    @Option(help: "Fibre length (km).") var distance: Double = 50
    @Option(help: "Fibre loss α (dB/km).") var alpha: Double = 0.2
    @Option(name: .customLong("eta-bob"), help: "Detector efficiency × receiver transmittance.") var etaBob: Double = 0.10
    @Option(help: "Background click probability Y0 per pulse.") var dark: Double = 1e-6
    @Option(help: "Misalignment error e_d.") var misalignment: Double = 0.015
    @Option(name: .customLong("ec-efficiency"), help: "Error-correction inefficiency f.") var ecEfficiency: Double = 1.16

    /// Throws naming the first option out of range.
    func check() throws {
        guard distance >= 0 else { throw ValidationError("--distance must be ≥ 0") }
        for (name, p) in [("--eta-bob", etaBob), ("--dark", dark), ("--misalignment", misalignment)] {
            guard (0...1).contains(p) else { throw ValidationError("\(name) must be in [0, 1], got \(p)") }
        }
        guard ecEfficiency >= 1 else { throw ValidationError("--ec-efficiency must be ≥ 1") }
    }

    func physics(signalIntensity: Double = 0.5, decoyIntensity: Double = 0.1) -> LinkPhysics {
        LinkPhysics(lengthKm: distance, lossDbPerKm: alpha, detectorEfficiency: etaBob, darkCountProbability: dark,
                    misalignment: misalignment, ecEfficiency: ecEfficiency, signalIntensity: signalIntensity, decoyIntensity: decoyIntensity)
    }
}
