import QKDCore
import QKDPhysics
import QKDTopology
import QKDWire
#if canImport(Glibc)
import Glibc
#endif

/// Eve on one link, as a pure instance: she sits at a point of the fibre, receives Alice's
/// photons there (`QuantumFrame`s emitted into the first segment only), attacks a fraction of
/// the pulses, and sends what she lets through into the rest of the channel towards Bob. She
/// reads the public post-processing (Bob's click announcements and Alice's sifting replies) to
/// learn which of her pulses became sifted key, and counts the sifted signal bits whose value
/// she knows with certainty. Detector efficiency belongs to the channel (as in
/// `ThresholdDetector`): `toBob` is the remaining fibre's transmittance times Bob's detector
/// efficiency, and a photon Eve forwards "losslessly" reaches Bob's detection for sure.
///
/// - Intercept-resend (Bennett, Brassard 1984; QBER = P/4 for a fraction P): Eve measures every
///   photon of an attacked pulse in a random basis (a double click gives a random bit) and sends
///   one photon in the state she found. When her basis is Alice's (half the time) she knows the
///   bit and Bob sees no error; otherwise Bob's sifted bit is wrong half the time.
/// - Photon-number splitting with blocking (Brassard, Lütkenhaus, Mor, Sanders, PRL 85, 1330,
///   2000; Lütkenhaus, PRA 61, 052304, 2000): Eve counts the photons of an attacked pulse
///   without disturbing them, keeps one photon of every multi-photon pulse and forwards the
///   rest losslessly, and forwards single photons only as far as needed to keep Bob's expected
///   gain: with A the honest arrival probability per pulse, P_m the multi-photon probability and
///   P_1 the single-photon probability at her position, multi-photon pulses are forwarded with
///   probability min(1, A/P_m) and single photons with max(0, (A − P_m)/P_1). She measures the
///   kept photon in the announced basis: every sifted bit from a multi-photon pulse is hers, and
///   the QBER is unchanged. She cannot tell signal from decoy pulses, so the decoy gain falls
///   where the decoy analysis sees it (Hwang, PRL 91, 057901, 2003).
/// - Beam splitting (Bennett et al., J. Cryptology 5, 3, 1992): Eve replaces the lossy fibre
///   after her point by a lossless one and a beam splitter of the same transmittance, and keeps
///   the photons it reflects. Bob's statistics do not change; she knows the sifted bits of
///   pulses of which she kept a photon (multi-photon pulses only, which GLLP already charges).
/// - Classical tamper: the photons pass untouched; a fraction of the post-processing messages
///   (Cascade parities, verification, results) get one bit flipped. Authentication must catch
///   every one.
public struct Eavesdropper: Sendable {
    public enum Attack: String, Codable, Sendable, CaseIterable {
        case interceptResend = "intercept-resend"
        case photonNumberSplitting = "pns"
        case beamSplitting = "beam-splitting"
        case classicalTamper = "classical-tamper"
    }

    public struct Settings: Sendable, Equatable {
        public var attack: Attack
        /// Fraction of pulses (or, for classical tamper, of post-processing messages) attacked.
        public var fraction: Double
        /// Transmittance from Eve's point to Bob's detection (fibre × detector efficiency).
        public var toBob: Double
        /// Transmittance from Alice to Eve's point (the frames Eve receives already went through it).
        public var fromAlice: Double
        /// Alice's intensities and class probabilities (PNS: photon-number statistics at Eve).
        public var source: SourceSettings

        public init(attack: Attack, fraction: Double, fromAlice: Double, toBob: Double, source: SourceSettings) {
            self.attack = attack
            self.fraction = fraction
            self.fromAlice = fromAlice
            self.toBob = toBob
            self.source = source
        }

        /// Eve `atKm` from the link's `a` end of a fibre of `lengthKm` with `lossDbPerKm` and
        /// Bob's `detectorEfficiency`: the `a` end emits into 10^(−α·x/10) and Eve sends into
        /// 10^(−α·(L − x)/10)·η_det. Default points: intercept-resend at Bob's entrance (the
        /// cheapest place to emulate; its QBER does not depend on where), PNS and beam splitting
        /// at Alice's exit (where they learn most). Classical tamper leaves the fibre alone.
        public static func onLink(attack: Attack, fraction: Double, atKm: Double?, lengthKm: Double, lossDbPerKm: Double,
                                  detectorEfficiency: Double, source: SourceSettings) -> (settings: Settings, atKm: Double) {
            let x = attack == .classicalTamper ? lengthKm : min(lengthKm, max(0, atKm ?? (attack == .interceptResend ? lengthKm : 0)))
            let fibre = { (km: Double) in pow(10, -lossDbPerKm * km / 10) }
            if attack == .classicalTamper {
                return (Settings(attack: attack, fraction: fraction, fromAlice: fibre(lengthKm) * detectorEfficiency, toBob: 1, source: source), x)
            }
            return (Settings(attack: attack, fraction: fraction, fromAlice: fibre(x), toBob: fibre(lengthKm - x) * detectorEfficiency,
                             source: source), x)
        }

        /// `onLink` with the link's length and physics from its topology.
        public static func onLink(_ link: TopologyLink, attack: Attack, fraction: Double, atKm: Double?) -> (settings: Settings, atKm: Double) {
            let p = link.physics
            let source = SourceSettings(signal: p.signalIntensity, decoy: p.decoyIntensity, signalProbability: p.signalProbability,
                                        decoyProbability: p.decoyProbability, vacuumProbability: p.vacuumProbability,
                                        decoyStates: p.decoyStates, xProbability: p.xBasisProbability)
            return onLink(attack: attack, fraction: fraction, atKm: atKm, lengthKm: link.lengthKm, lossDbPerKm: p.lossDbPerKm,
                          detectorEfficiency: p.detectorEfficiency, source: source)
        }

        /// PNS: probabilities of forwarding a multi-photon and a single-photon pulse.
        public var splittingPolicy: (multi: Double, single: Double) {
            var arrival = 0.0, multi = 0.0, single = 0.0
            for c in 0..<3 {
                let p = source.probabilities[c], m = source.intensities[c] * fromAlice
                arrival += p * -expm1(-m * toBob)
                single += p * m * exp(-m)
                multi += p * (1 - exp(-m) * (1 + m))
            }
            let forwardMulti = multi > 0 ? min(1, arrival / multi) : 0
            let forwardSingle = single > 0 ? max(0, min(1, (arrival - multi) / single)) : 0
            return (forwardMulti, forwardSingle)
        }
    }

    /// What Eve holds about one frame's pulses: offsets (increasing) and, per offset, the bases
    /// in which she knows Alice's bit (bit 0: rectilinear, bit 1: diagonal).
    struct FrameKnowledge: Sendable {
        var offsets: [UInt32] = []
        var bases: [UInt8] = []
        /// After Bob's announcement: whether Eve knows each announced click's bit in Bob's basis.
        var announced: [Bool]?
    }

    public let settings: Settings
    private let policy: (multi: Double, single: Double)
    private var random: Xoshiro256
    private var frames: [UInt64: FrameKnowledge] = [:]
    /// Frames remembered while their sifting is under way.
    let maxFrames = 64
    public private(set) var report: EavesdropperReport

    public init(settings: Settings, link: String, seed: UInt64) {
        self.settings = settings
        policy = settings.splittingPolicy
        random = Xoshiro256(seed: seed)
        report = EavesdropperReport(link: link, attack: settings.attack.rawValue, fraction: settings.fraction, seed: seed)
    }

    // MARK: The quantum channel

    /// Attacks one frame of Alice's photons as they arrive at Eve; returns what Eve sends on to
    /// Bob (through the rest of the channel).
    public mutating func intercept(_ frame: QuantumFrame) -> QuantumFrame {
        var out = frame
        out.offsets.removeAll(keepingCapacity: true)
        out.photons.removeAll(keepingCapacity: true)
        out.states.removeAll(keepingCapacity: true)
        var known = FrameKnowledge()
        report.framesSeen += 1
        for i in frame.offsets.indices {
            let offset = frame.offsets[i], n = frame.photons[i]
            let state = frame.states[i] & 3, dark = frame.states[i] & ArrivalBatch.darkCount
            defer {
                // Bob's detector noise is no photon: it passes Eve, on its pulse, whatever she did.
                if dark != 0 {
                    if out.offsets.last == offset { out.states[out.states.count - 1] |= dark } else { out.append(offset, 0, state | dark) }
                }
            }
            guard n > 0 else { continue }
            report.pulsesSeen += 1
            guard settings.attack != .classicalTamper, settings.fraction >= 1 || random.nextUnitDouble() < settings.fraction else {
                let kept = thin(n, settings.toBob)
                if kept > 0 { out.append(offset, kept, state) }
                continue
            }
            report.pulsesAttacked += 1
            switch settings.attack {
            case .interceptResend:
                let basis = UInt8(random.next() & 1)
                let value = measure(photons: n, state: state, basis: basis)
                known.append(offset, 1 << basis)
                report.pulsesResent += 1
                if random.nextUnitDouble() < settings.toBob { out.append(offset, 1, value | basis << 1) }
            case .photonNumberSplitting:
                if n == 1 {
                    if random.nextUnitDouble() < policy.single { out.append(offset, 1, state) } else { report.pulsesBlocked += 1 }
                } else {
                    report.photonsKept += 1
                    known.append(offset, 3)
                    if random.nextUnitDouble() < policy.multi { out.append(offset, n - 1, state) } else { report.pulsesBlocked += 1 }
                }
            case .beamSplitting:
                let passed = thin(n, settings.toBob)
                if passed < n {
                    report.photonsKept += UInt64(n - passed)
                    known.append(offset, 3)
                }
                if passed > 0 { out.append(offset, passed, state) }
            case .classicalTamper:
                break
            }
        }
        // Every frame that passed her is remembered (even with nothing known), so that only the
        // sifted bits of frames she saw are counted (not those that went by before she came).
        frames[frame.frameIndex] = known
        if frames.count > maxFrames, let oldest = frames.keys.min() { frames[oldest] = nil }
        return out
    }

    /// Each photon survives with probability `t` (beam-splitter model of loss).
    private mutating func thin(_ n: UInt8, _ t: Double) -> UInt8 {
        if t >= 1 { return n }
        var kept: UInt8 = 0
        for _ in 0..<n where random.nextUnitDouble() < t { kept += 1 }
        return kept
    }

    /// Eve's ideal detectors: each photon in her basis gives Alice's value, in the other basis
    /// a random one; a double click gives a random bit. Random outcomes are the value XOR a
    /// seeded coin (the same distribution), so what she resends differs from Alice's value by
    /// physics alone, whatever the secret value was (as in `ThresholdDetector`).
    private mutating func measure(photons n: UInt8, state: UInt8, basis: UInt8) -> UInt8 {
        let value = state & 1
        var clicks: UInt8 = 0
        for _ in 0..<n {
            let bit = (state >> 1) & 1 == basis ? value : value ^ UInt8(random.next() & 1)
            clicks |= 1 << bit
        }
        return clicks == 3 ? value ^ UInt8(random.next() & 1) : (clicks == 2 ? 1 : 0)
    }

    // MARK: The public channel

    /// Bob's clicks and bases for a frame: which of them Eve knows in Bob's basis.
    public mutating func observe(_ announcement: SiftAnnouncement) {
        guard var k = frames[announcement.frameIndex] else { return }
        var flags = [Bool](repeating: false, count: announcement.offsets.count)
        var j = 0
        for (i, offset) in announcement.offsets.enumerated() {
            while j < k.offsets.count && k.offsets[j] < offset { j += 1 }
            if j < k.offsets.count && k.offsets[j] == offset, i < announcement.bases.count {
                flags[i] = k.bases[j] & (1 << announcement.bases[i]) != 0
            }
        }
        k.announced = flags
        frames[announcement.frameIndex] = k
    }

    /// Alice's reply for a frame: the sifted clicks (same basis) and their classes. Counts the
    /// sifted signal bits of frames that passed Eve, and those she knows; and the signal gain
    /// Bob observed (clicks on signal pulses per signal pulse sent), with the tagged fraction
    /// GLLP would charge for it (`KeyRate.taggedFraction`).
    public mutating func observe(_ reply: SiftReply) {
        guard let flags = frames.removeValue(forKey: reply.frameIndex)?.announced else { return }
        for i in reply.matches.indices where reply.matches[i] == 1 && i < reply.classes.count && reply.classes[i] == 0 {
            report.siftedSignalBits += 1
            if i < flags.count, flags[i] { report.knownSignalBits += 1 }
        }
        if report.siftedSignalBits > 0 { report.knownFraction = Double(report.knownSignalBits) / Double(report.siftedSignalBits) }
        report.signalPulses += reply.classCounts.first ?? 0
        report.signalClicks += UInt64(reply.classes.lazy.filter { $0 == 0 }.count)
        if report.signalPulses > 0, report.signalClicks > 0 {
            let gain = Double(report.signalClicks) / Double(report.signalPulses)
            report.signalGain = gain
            // The charge that privacy amplification of a link without decoys makes; a decoy-state
            // link charges its own bound instead (1 − Q1_L/Q_μ, from the decoy gains).
            if !settings.source.decoyStates {
                report.gllpTaggedFraction = KeyRate.taggedFraction(mu: settings.source.intensities[0], gain: gain)
            }
        }
    }

    /// Classical tamper: flips one random bit of a post-processing message with probability
    /// `fraction`; nil when the message passes unaltered.
    public mutating func tamper(_ kind: MessageKind, _ payload: [UInt8]) -> [UInt8]? {
        guard settings.attack == .classicalTamper, Eavesdropper.tamperable.contains(kind), !payload.isEmpty else { return nil }
        report.messagesSeen += 1
        guard settings.fraction >= 1 || random.nextUnitDouble() < settings.fraction else { return nil }
        var altered = payload
        let bit = Int(random.nextBounded(UInt64(payload.count * 8)))
        altered[bit / 8] ^= 1 << (bit % 8)
        report.messagesAltered += 1
        return altered
    }

    /// The post-processing messages classical tamper alters.
    public static let tamperable: Set<MessageKind> = [.cascadeRequest, .cascadeReply, .reconciliationDone, .reconciliationResult]
}

extension Eavesdropper.FrameKnowledge {
    mutating func append(_ offset: UInt32, _ bases: UInt8) {
        offsets.append(offset)
        self.bases.append(bases)
    }
}

extension QuantumFrame {
    mutating func append(_ offset: UInt32, _ photons: UInt8, _ state: UInt8) {
        offsets.append(offset)
        self.photons.append(photons)
        states.append(state)
    }
}
