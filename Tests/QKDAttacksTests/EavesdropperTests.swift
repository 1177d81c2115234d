import QKDAttacks
import QKDCore
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One link's BB84 with Eve between the ends, in one process: Alice emits into the fibre up
/// to Eve, Eve attacks and reads the public sifting, Bob measures. Returns the sifted blocks'
/// summed statistics (as both ends estimate them) and Eve's report.
func runLink(attack: Eavesdropper.Attack?, fraction: Double = 1, atKm: Double? = nil, km: Double = 25,
             source: SourceSettings = .init(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15),
             frames: Int, seed: UInt64) throws -> (statistics: BlockStatistics, eve: EavesdropperReport?) {
    let physics = LinkPhysics(lengthKm: km)
    let config = BB84Configuration(pulsesPerFrame: 2_000_000, blockKeyBits: 20_000, source: source,
                                   darkCountProbability: physics.darkCountProbability)
    let seeds = SeedTree(root: seed).child("link/eve-test")
    var alice = BB84Sender(configuration: config, seeds: seeds, secrecy: .secret)
    var bob = BB84Receiver(configuration: config, seeds: seeds, misalignment: physics.misalignment,
                           darkCountProbability: physics.darkCountProbability)
    var eve = attack.map {
        Eavesdropper(settings: Eavesdropper.Settings.onLink(attack: $0, fraction: fraction, atKm: atKm, lengthKm: km, lossDbPerKm: 0.2,
                                                            detectorEfficiency: physics.detectorEfficiency, source: source).settings,
                     link: "eve-test", seed: seed &+ 1)
    }
    var total = BlockStatistics()
    for _ in 0..<frames {
        var frame = alice.nextFrame(transmittance: eve?.settings.fromAlice ?? physics.transmittance)
        if eve != nil { frame = eve!.intercept(frame) }
        let announcement = try bob.received(frame)
        eve?.observe(announcement)
        let reply = try alice.received(announcement)
        eve?.observe(reply)
        if let reveal = try bob.received(reply) {
            let (result, block) = try alice.received(reveal)
            _ = try bob.received(result)
            total = total + block.statistics
        }
    }
    return (total, eve?.report)
}

@Suite struct EavesdropperTests {
    static let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)

    @Test func withoutEveTheQBERIsTheMisalignmentFloor() throws {
        let (s, _) = try runLink(attack: nil, frames: 40, seed: 1)
        #expect(s.revealed[0] > 1000)
        #expect(s.errorRate(.signal) < 0.03)
    }

    /// Intercept-resend on a fraction P of the pulses raises the QBER by about P/4, keeps the
    /// gain, and Eve knows about half the sifted bits she measured.
    @Test(arguments: [1.0, 0.5])
    func interceptResendRaisesTheQBERByAQuarterOfTheFraction(fraction: Double) throws {
        let (honest, _) = try runLink(attack: nil, frames: 40, seed: 2)
        let (s, eve) = try runLink(attack: .interceptResend, fraction: fraction, frames: 40, seed: 2)
        let floor = honest.errorRate(.signal)
        let expected = floor + (1 - 2 * floor) * fraction / 4
        #expect(abs(s.errorRate(.signal) - expected) < 0.02, "QBER \(s.errorRate(.signal)), expected ≈ \(expected)")
        #expect(abs(s.gain(.signal) / honest.gain(.signal) - 1) < 0.1, "gain kept: \(s.gain(.signal)) vs \(honest.gain(.signal))")
        let report = try #require(eve)
        #expect(report.pulsesAttacked > 0 && report.siftedSignalBits > 1000)
        #expect(abs(report.knownFraction - fraction / 2) < 0.05, "Eve knows \(report.knownFraction) of the sifted bits")
        let estimates = s.estimates(source: Self.source, ecEfficiency: 1.16)
        if fraction == 1 { #expect(KeyDistiller.abortReason(estimates, qberThreshold: 0.11)?.contains("QBER") == true) }
    }

    /// PNS with blocking keeps the QBER and (within statistics) the signal gain, so the link
    /// looks healthy, but the decoy analysis certifies no single-photon key.
    @Test func photonNumberSplittingIsInvisibleToTheQBERButNotToDecoys() throws {
        let (honest, _) = try runLink(attack: nil, frames: 40, seed: 3)
        let (s, eve) = try runLink(attack: .photonNumberSplitting, frames: 40, seed: 3)
        #expect(s.errorRate(.signal) < 0.04, "QBER \(s.errorRate(.signal))")
        #expect(abs(s.gain(.signal) / honest.gain(.signal) - 1) < 0.15, "signal gain \(s.gain(.signal)) vs \(honest.gain(.signal))")
        #expect(s.gain(.decoy) < 0.5 * honest.gain(.decoy), "decoy gain falls: \(s.gain(.decoy)) vs \(honest.gain(.decoy))")
        let e = s.estimates(source: Self.source, ecEfficiency: 1.16)
        #expect(KeyDistiller.abortReason(e, qberThreshold: 0.11)?.contains("single-photon") == true, "\(e)")
        let report = try #require(eve)
        // μ = 0.5 at 25 km: the multi-photon pulses alone exceed the honest gain, so every
        // sifted signal bit (but dark counts) came from a pulse Eve split.
        #expect(report.knownFraction > 0.95, "\(report)")
    }

    /// Without decoy states PNS passes unnoticed, and Eve knows the tagged fraction GLLP
    /// charges: Δ = P_multi(μ) / Q_μ (Gottesman, Lo, Lütkenhaus, Preskill, QIC 4, 325, 2004).
    @Test func withoutDecoysEveKnowsTheGLLPTaggedFraction() throws {
        let mu = 0.05
        let source = SourceSettings(signal: mu, decoy: 0, signalProbability: 1, decoyProbability: 0, vacuumProbability: 0, decoyStates: false)
        let (s, eve) = try runLink(attack: .photonNumberSplitting, km: 5, source: source, frames: 60, seed: 4)
        let e = s.estimates(source: source, ecEfficiency: 1.16)
        #expect(KeyDistiller.abortReason(e, qberThreshold: 0.11) == nil, "not detected: \(e)")
        let tagged = (1 - exp(-mu) * (1 + mu)) / s.gain(.signal)
        let report = try #require(eve)
        #expect(abs(report.knownFraction - tagged) < 0.1 * tagged, "Eve knows \(report.knownFraction), GLLP's Δ = \(tagged)")
        // Eve's own figure, from the public sifting only (every frame she saw answered, the
        // unfinished last block too), is the gain and Δ of Bob's closed blocks within 3 %.
        let gain = try #require(report.signalGain), eveDelta = try #require(report.gllpTaggedFraction)
        #expect(report.signalPulses >= s.pulses[0] && report.signalClicks >= s.clicks[0], "\(report)")
        #expect(abs(gain / s.gain(.signal) - 1) < 0.03 && abs(eveDelta / tagged - 1) < 0.03, "Eve's Δ \(eveDelta), from Bob's statistics \(tagged)")
    }

    /// Beam splitting at Alice's exit changes nothing Bob sees; Eve holds photons of
    /// multi-photon pulses only, fewer than GLLP charges.
    @Test func beamSplittingIsUndetectableAndBoundedByTheMultiPhotonFraction() throws {
        let (honest, _) = try runLink(attack: nil, frames: 40, seed: 5)
        let (s, eve) = try runLink(attack: .beamSplitting, frames: 40, seed: 5)
        #expect(abs(s.gain(.signal) / honest.gain(.signal) - 1) < 0.1)
        #expect(abs(s.errorRate(.signal) - honest.errorRate(.signal)) < 0.01)
        let e = s.estimates(source: Self.source, ecEfficiency: 1.16)
        #expect(KeyDistiller.abortReason(e, qberThreshold: 0.11) == nil)
        let report = try #require(eve)
        let multiBound = 1 - e.singlePhotonGainLower / e.gainSignal
        #expect(report.knownFraction > 0.05 && report.knownFraction < multiBound, "\(report.knownFraction) vs bound \(multiBound)")
    }

    @Test func classicalTamperFlipsExactlyOneBitOfPostProcessingMessagesOnly() {
        let settings = Eavesdropper.Settings.onLink(attack: .classicalTamper, fraction: 1, atKm: nil, lengthKm: 25, lossDbPerKm: 0.2,
                                                    detectorEfficiency: 0.1, source: Self.source).settings
        var eve = Eavesdropper(settings: settings, link: "t", seed: 9)
        let payload = [UInt8](repeating: 0x5A, count: 40)
        #expect(eve.tamper(.siftAnnouncement, payload) == nil)
        #expect(eve.tamper(.heartbeat, payload) == nil)
        for kind in Eavesdropper.tamperable {
            let altered = eve.tamper(kind, payload)
            #expect(altered != nil, "\(kind) altered")
            let flipped = zip(payload, altered ?? payload).map { ($0 ^ $1).nonzeroBitCount }.reduce(0, +)
            #expect(flipped == 1, "\(kind)")
        }
        #expect(eve.report.messagesAltered == UInt64(Eavesdropper.tamperable.count))
    }

    /// The interposer carries frames between the two ends only, and only for its link.
    @Test func theInterposerCarriesBetweenTheEndsOfItsLinkOnly() {
        let settings = Eavesdropper.Settings.onLink(attack: .interceptResend, fraction: 0, atKm: nil, lengthKm: 25, lossDbPerKm: 0.2,
                                                    detectorEfficiency: 0.1, source: Self.source).settings
        var carrier = Interposer(link: LinkIndex(3), a: NodeID("A"), b: NodeID("B"), eve: Eavesdropper(settings: settings, link: "A-B", seed: 1))
        let heartbeat = Envelope(kind: .heartbeat, link: LinkIndex(3), sequence: 1, payload: Heartbeat(incarnation: 7).encoded()).encoded()
        #expect(carrier.carry(heartbeat, from: NodeID("A"))?.to == NodeID("B"))
        #expect(carrier.carry(heartbeat, from: NodeID("B"))?.frame == heartbeat)
        #expect(carrier.carry(heartbeat, from: NodeID("C")) == nil, "a stranger's frame is dropped")
        let other = Envelope(kind: .heartbeat, link: LinkIndex(4), sequence: 1, payload: Heartbeat(incarnation: 7).encoded()).encoded()
        #expect(carrier.carry(other, from: NodeID("A")) == nil, "another link's frame is dropped")
        #expect(carrier.carry([1, 2, 3], from: NodeID("A"))?.frame == [1, 2, 3], "unparsable frames pass unread")
        #expect(carrier.report.framesUnreadable == 3 && carrier.report.framesForwarded == 3)
    }
}
