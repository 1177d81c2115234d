import QKDCore
import QKDKeyPool
import QKDPhysics
import QKDPostProcessing
import QKDTopology
import QKDWire

/// One end of one link's quantum layer, as a pure instance. The link's `a` end is Alice (it
/// emits frames, paced against the wall clock at `source_rate × time_scale`); the `b` end is
/// Bob (it measures and announces). Every sifted block with its estimates is handed up as an
/// effect. A new session starts when the link comes back or the peer restarts: the protocol
/// state of the old one is dropped (its unfinished rounds are lost, never half-kept).
public struct QuantumLinkEngine: Sendable {
    public enum Role: String, Sendable { case alice, bob }

    public enum Effect: Sendable {
        case send(MessageKind, [UInt8])
        case log(LogLevel, String, [String: String])
        case block(SiftedBlock)
        /// The link became compromised (with the reason) or clean again.
        case verdict(compromised: Bool, reason: String?)
        /// A free-space link's pass block is distilled at Bob's end (pending at both ends):
        /// agree the pools again, which makes its keys available at both, instead of waiting
        /// for the next pass's round to acknowledge it (hours later).
        case passDistilled
    }

    public typealias Report = QuantumLinkReport

    public let link: TopologyLink
    public let role: Role
    public let physics: LinkPhysics
    public let configuration: BB84Configuration
    let seeds: SeedTree
    /// Where the link's secret draws come from, and its transcript-hash key (`LinkBootstrap`).
    public let secrecy: Secrecy
    /// The link's transcript-hash key (`LinkBootstrap`), read at every session start.
    public internal(set) var authenticationKey: UInt128
    let timeScale: Double
    /// Frames Alice may have in flight before she waits for answers.
    let window: Int
    /// Frames older than this many wall nanoseconds without an answer are given up.
    let roundTimeoutNs: UInt64
    /// Sifted blocks awaiting distillation beyond which Alice stops emitting frames.
    let maxDistillationBacklog = 4

    /// A free-space link's pacing (the mission's passes and geometry); nil on fibre.
    public let drive: FreeSpaceDrive?
    /// How far (emulated UTC) a free-space link's source has emitted.
    private var cursor: Double = 0
    private var sessions = 0

    /// While an interposer is spliced into the fibre, the `a` end emits into the segment that
    /// ends at it (the interposer applies the rest of the channel); nil: the whole channel.
    public var emissionTransmittance: Double?
    private var sender: BB84Sender?
    private var receiver: BB84Receiver?
    private var distiller: KeyDistiller?
    private let distillation: DistillerConfiguration
    private var inFlight: [UInt64: Instant] = [:]
    private(set) var report: Report
    /// Wall instant and emulated pulse count where the current pacing period started.
    private var paceStart: Instant
    private var pulsesAtPaceStart: UInt64 = 0
    private var pulsesEmitted: UInt64 = 0
    private var wallBeforeSession: Double = 0
    /// Final key bits distilled by the sessions before this one (each session's distiller
    /// counts its own).
    private var finalBitsBeforeSession: UInt64 = 0
    private var active = false
    /// When each block this end sifted in the current session went to distillation, or the
    /// last distillation message arrived; a round with no news for `distillationTimeoutNs` is
    /// abandoned (a refused or lost message would otherwise hold it, and the backlog limit
    /// would stop the source).
    private var distilling: [UInt64: Instant] = [:]
    let distillationTimeoutNs: UInt64 = 30_000_000_000

    public init(link: TopologyLink, node: NodeID, topologySeed: UInt64, secrecy: Secrecy, authenticationKey: UInt128,
                timeScale: Double, now: Instant,
                framePulses: UInt32? = nil, blockBits: Int? = nil, asymptoticBound: Bool = false, window: Int = 4,
                roundTimeoutMs: UInt64 = 3000, drive: FreeSpaceDrive? = nil) {
        self.link = link
        role = node == link.a ? .alice : .bob
        let p = link.physics
        physics = LinkPhysics(lengthKm: link.lengthKm, lossDbPerKm: p.lossDbPerKm, detectorEfficiency: p.detectorEfficiency,
                              darkCountProbability: p.darkCountProbability, misalignment: p.misalignment,
                              ecEfficiency: p.ecEfficiency, signalIntensity: p.signalIntensity, decoyIntensity: p.decoyIntensity)
        distillation = asymptoticBound ? link.distillation.withAsymptoticBound() : link.distillation
        let source = distillation.source
        // 10 ms of emulated time per frame by default; a free-space link's frames are its
        // drive's, and its blocks are its passes (each closed by the pass's last frame).
        let frameSeconds = drive?.frameSeconds ?? 0.01
        let pulses = framePulses ?? UInt32(max(1, min(Double(UInt32.max), p.sourceRateHz * frameSeconds)))
        configuration = BB84Configuration(pulsesPerFrame: pulses,
                                           blockKeyBits: drive == nil ? blockBits ?? p.blockKeyBits : BB84Configuration.maxBlockKeyBits,
                                           blockPulses: blockBits == nil && drive == nil ? p.blockPulses : nil, source: source,
                                           darkCountProbability: p.darkCountProbability)
        self.drive = drive
        cursor = drive?.clock.timeline.mission.start ?? 0
        seeds = SeedTree(root: topologySeed).child("link/\(link.name)")
        self.secrecy = secrecy
        self.authenticationKey = authenticationKey
        self.timeScale = timeScale
        self.window = window
        roundTimeoutNs = roundTimeoutMs * 1_000_000
        paceStart = now
        report = Report(link: link.name, role: role.rawValue, state: .down, session: 0, active: false, framesSent: 0, framesMeasured: 0,
                        roundsDiscarded: 0, blocks: 0, siftedBitsTotal: 0, keyBitsSifted: 0, emulatedSeconds: 0, wallSeconds: 0,
                        lagSeconds: 0)
        report.secrecy = secrecy.rawValue
    }

    /// A session's number from both ends' nonces (sent in `PoolSync`): the same at both ends,
    /// different for every pair of nonces, so no two sessions of a link share seeds or key IDs.
    public static func session(aliceNonce: UInt64, bobNonce: UInt64) -> UInt64 {
        var g = SplitMix64(seed: aliceNonce ^ (bobNonce &* 0x9E37_79B9_7F4A_7C15))
        return g.next() ^ bobNonce
    }

    /// Starts a session (the link is up and both ends agreed their pools). Alice's frame
    /// numbers carry the session's low 32 bits in their upper half so that late messages of
    /// an old session can never match a new round.
    /// `confirmedKeys` pending keys became available by the pool agreement that started it
    /// (rounds distilled before and acknowledged by no later round): generated keys too.
    public mutating func start(session: UInt64, at now: Instant, confirmedKeys: Int = 0) {
        report.generatedBitsTotal += UInt64(confirmedKeys * distillation.keyBits)
        let sessionSeeds = seeds.child("session/\(session)")
        let authKey = authenticationKey
        var s = BB84Sender(configuration: configuration, seeds: sessionSeeds, secrecy: secrecy, authenticationKey: authKey)
        s.skipFrames(to: (session & 0xFFFF_FFFF) << 32)
        sender = role == .alice ? s : nil
        receiver = role == .bob ? BB84Receiver(configuration: configuration, seeds: sessionSeeds,
                                               misalignment: physics.misalignment, darkCountProbability: physics.darkCountProbability,
                                               authenticationKey: authKey) : nil
        distiller = KeyDistiller(role: role == .alice ? .alice : .bob, configuration: distillation, linkSeeds: seeds,
                                 session: session, authenticationKey: authKey, secrecy: secrecy)
        inFlight.removeAll()
        distilling.removeAll()
        report.session = session
        report.sessionBlocks = 0
        paceStart = now
        pulsesAtPaceStart = pulsesEmitted
        // A later session (a restart, a flap) starts at the present: a pass, or the part of
        // one, that went by while the link was down is lost, as it would be.
        if let drive, sessions > 0 { cursor = max(cursor, drive.clock.utc(at: now)) }
        sessions += 1
        active = true
        report.active = true
    }

    /// Stops the session (the link is down): unfinished rounds are discarded.
    public mutating func stop(at now: Instant) {
        guard active else { return }
        report.roundsDiscarded += UInt64(inFlight.count)
        if let f = distiller?.counters.lastFiniteKey { report.finiteKey = f }
        finalBitsBeforeSession += distiller?.counters.finalBits ?? 0
        report.finalBitsTotal = finalBitsBeforeSession
        inFlight.removeAll()
        wallBeforeSession += Double(now.nanoseconds(since: paceStart)) / 1e9
        sender = nil
        receiver = nil
        distiller = nil
        active = false
        report.active = false
    }

    /// Handles a quantum-layer message from the peer. A malformed or out-of-place message
    /// discards its round only. Only reconciliation reaches `pool` (it spends authentication
    /// keys and deposits distilled keys), one operation at a time (`DistillationPool`): frames,
    /// sifting, estimation and the computations between those operations never hold a node's
    /// pool lock, so its event loop never waits behind them.
    public mutating func received(_ kind: MessageKind, _ payload: [UInt8], at now: Instant, pool: inout some DistillationPool) -> [Effect] {
        switch kind {
        case .cascadeRequest, .cascadeReply, .reconciliationDone, .reconciliationResult: break
        default: return received(kind, payload, at: now)
        }
        guard active else { return [] }
        // The peer is working through the rounds (one link's messages arrive in order): the
        // timeout counts from the last distillation message, not from when a round opened, so a
        // multi-Mbit block on a loaded machine is not abandoned while it progresses.
        for block in distilling.keys { distilling[block] = now }
        let before = distiller!.counters.finalBits
        let effects = translate(distiller!.received(kind, payload, pool: &pool))
        guard drive != nil, role == .bob, kind == .reconciliationResult, distiller!.counters.finalBits > before else { return effects }
        return effects + [.passDistilled]
    }

    /// Handles a message that does not touch the pool: frames, sifting and estimation. A
    /// reconciliation message here is refused (its round discarded).
    mutating func received(_ kind: MessageKind, _ payload: [UInt8], at now: Instant) -> [Effect] {
        guard active else { return [] }
        do {
            switch (role, kind) {
            case (.bob, .quantumFrame):
                let frame = try QuantumFrame.decode(payload)
                report.framesMeasured += 1
                pulsesEmitted += UInt64(frame.pulses)
                return [.send(.siftAnnouncement, try receiver!.received(frame).encoded())]
            case (.alice, .siftAnnouncement):
                let announcement = try SiftAnnouncement.decode(payload)
                inFlight[announcement.frameIndex] = nil
                return [.send(.siftReply, try sender!.received(announcement).encoded())]
            case (.bob, .siftReply):
                guard let reveal = try receiver!.received(SiftReply.decode(payload)) else { return [] }
                return [.send(.estimationReveal, reveal.encoded())]
            case (.alice, .estimationReveal):
                let (result, block) = try sender!.received(EstimationReveal.decode(payload))
                return [.send(.estimationResult, result.encoded())] + finished(block, at: now)
            case (.bob, .estimationResult):
                return finished(try receiver!.received(EstimationResult.decode(payload)), at: now)
            default:
                report.roundsDiscarded += 1
                return [.log(.warning, "quantum-layer message not expected by \(role.rawValue)", ["link.id": link.name, "kind": "\(kind)"])]
            }
        } catch {
            report.roundsDiscarded += 1
            return [.log(.warning, "round discarded", ["link.id": link.name, "reason": "\(error)"])]
        }
    }

    private mutating func finished(_ block: SiftedBlock, at now: Instant) -> [Effect] {
        distilling[block.index] = now
        report.sessionBlocks = block.index + 1
        let e = block.statistics.estimates(source: configuration.source, ecEfficiency: physics.ecEfficiency)
        report.blocks += 1
        report.siftedBitsTotal += block.statistics.sifted.reduce(0, +)
        report.keyBitsSifted += UInt64(block.key.count)
        report.qber = e.qberSignal
        report.gain = e.gainSignal
        report.y1Lower = e.y1Lower
        report.e1Upper = e.e1Upper
        report.keyPerSignalPulse = e.keyPerSignalPulse
        let distilled = translate(distiller!.sifted(block))
        return distilled + [.block(block),
                .log(.info, "block sifted", ["link.id": link.name, "block": "\(block.index)", "sifted_bits": "\(block.key.count)",
                                             "qber": "\(e.qberSignal)", "key_per_signal_pulse": "\(e.keyPerSignalPulse)"])]
    }

    /// Alice emits the frames the wall clock calls for (within the window) and gives up on
    /// rounds that were never answered.
    public mutating func tick(at now: Instant) -> [Effect] {
        updateClock(now)
        guard active else { return [] }
        var effects: [Effect] = []
        for (block, started) in distilling where now.nanoseconds(since: started) > distillationTimeoutNs {
            distilling[block] = nil
            if distiller?.abandon(block) == true {
                effects.append(.log(.warning, "distillation round abandoned: no answer", ["link.id": link.name, "block": "\(block)"]))
            }
        }
        guard role == .alice, var s = sender else { return effects }
        for (index, sent) in inFlight where now.nanoseconds(since: sent) > roundTimeoutNs {
            inFlight[index] = nil
            report.roundsDiscarded += 1
        }
        // Backpressure: while distillation is behind, the source waits (the lag shows it).
        let backlogged = (distiller?.unfinishedRounds ?? 0) >= maxDistillationBacklog
        if let drive {
            let utc = drive.clock.utc(at: now)
            while inFlight.count < window && !backlogged, let f = drive.frame(from: cursor, now: utc) {
                let frame = s.nextFrame(transmittance: emissionTransmittance ?? physics.detectorEfficiency * f.transmittance,
                                        pulses: UInt32(max(1, (f.seconds * link.physics.sourceRateHz).rounded())),
                                        darkCountProbability: SkyBackground.yield(darkCountProbability: physics.darkCountProbability,
                                                                                  countsPerSecond: f.backgroundCountsPerSecond,
                                                                                  sourceRateHz: link.physics.sourceRateHz))
                if f.endsPass { s.closeBlock(atFrame: frame.frameIndex) }
                inFlight[frame.frameIndex] = now
                pulsesEmitted += UInt64(frame.pulses)
                report.framesSent += 1
                effects.append(.send(.quantumFrame, frame.encoded()))
                cursor = f.start + f.seconds
            }
            sender = s
            updateClock(now)
            return effects
        }
        let due = dueFrames(at: now)
        var emitted = 0
        while emitted < due && inFlight.count < window && !backlogged {
            let frame = s.nextFrame(transmittance: emissionTransmittance ?? physics.transmittance)
            inFlight[frame.frameIndex] = now
            pulsesEmitted += UInt64(frame.pulses)
            report.framesSent += 1
            effects.append(.send(.quantumFrame, frame.encoded()))
            emitted += 1
        }
        sender = s
        updateClock(now)
        return effects
    }

    /// Whole frames the wall clock allows beyond what was emitted in this pacing period.
    private func dueFrames(at now: Instant) -> Int {
        let wall = Double(now.nanoseconds(since: paceStart)) / 1e9
        let target = wall * timeScale * link.physics.sourceRateHz
        let done = Double(pulsesEmitted - pulsesAtPaceStart)
        return max(0, Int((target - done) / Double(configuration.pulsesPerFrame)))
    }

    private mutating func updateClock(_ now: Instant) {
        let sessionWall = active ? Double(now.nanoseconds(since: paceStart)) / 1e9 : 0
        report.wallSeconds = wallBeforeSession + sessionWall
        if let drive {
            let utc = drive.clock.utc(at: now)
            report.emulatedSeconds = utc - drive.clock.timeline.mission.start
            report.freeSpace = drive.report(at: utc)
            // Behind: the source has not caught up with the pass under way.
            report.lagSeconds = role == .alice && report.freeSpace!.inView ? max(0, utc - max(cursor, drive.passes.first { $0.end > cursor }?.start ?? utc)) : 0
            return
        }
        report.emulatedSeconds = Double(pulsesEmitted) / link.physics.sourceRateHz
        if role == .alice {
            report.lagSeconds = max(0, sessionWall * timeScale - Double(pulsesEmitted - pulsesAtPaceStart) / link.physics.sourceRateHz)
        }
    }

    /// When Alice next needs to run: the next frame's due time (or soon, if she is behind).
    public func nextDeadline(after now: Instant) -> Instant? {
        guard active, role == .alice else { return nil }
        if let drive {
            // The next frame's end, in wall time (the worker waits at most 100 ms anyway).
            guard let end = drive.nextFrameEnd(after: cursor) else { return nil }
            return max(drive.clock.instant(atUTC: end), now.advanced(byMilliseconds: 1))
        }
        let framePeriodNs = Double(configuration.pulsesPerFrame) / (link.physics.sourceRateHz * timeScale) * 1e9
        return now.advanced(byNanoseconds: UInt64(max(1e6, min(framePeriodNs, 1e8))))
    }

    public var currentReport: Report {
        var r = report
        if let d = distiller?.counters {
            r.ecEfficiency = d.ecEfficiency
            r.blocksFailedVerification = d.blocksFailedVerification
            r.blocksFailedAuthentication = d.blocksFailedAuthentication
            r.distillationMessagesRejected = d.messagesRejected
            r.finalBitsTotal = finalBitsBeforeSession + d.finalBits
            r.lastKeyBlock = d.lastKeyBlock
            if let f = d.lastFiniteKey { r.finiteKey = f }
            r.verificationCollisionBound = d.lastVerificationBound
            if let bits = d.lastTranscriptBits {
                r.authTranscriptBits = bits
                r.authForgeryBound = TranscriptHash.forgeryBound(bits: bits)
            }
        }
        return r
    }

    /// Marks the link compromised when a block fails parameter estimation, clean again after
    /// the first block that passes; logs and counts each change.
    private mutating func verdict(block: UInt64, abortReason reason: String?) -> Effect {
        if let reason {
            report.roundsAborted += 1
            report.abortReason = reason
            guard !report.compromised else {
                return .log(.warning, "round aborted", ["link.id": link.name, "block": "\(block)", "reason": reason])
            }
            report.compromised = true
            report.compromisedEventsTotal += 1
            return .verdict(compromised: true, reason: reason)
        }
        guard report.compromised else { return .log(.debug, "block passed estimation", ["link.id": link.name, "block": "\(block)"]) }
        report.compromised = false
        report.abortReason = nil
        return .verdict(compromised: false, reason: nil)
    }

    /// Distillation outputs as engine effects.
    private mutating func translate(_ outputs: [KeyDistiller.Output]) -> [Effect] {
        outputs.map { output in
            switch output {
            case .send(let kind, let payload): return .send(kind, payload)
            case .committed(let block, let ids):
                report.generatedBitsTotal += UInt64(ids.count * distillation.keyBits)
                return .log(.debug, "keys committed", ["link.id": link.name, "block": "\(block)", "keys": "\(ids.count)"])
            case .estimated(let block, let reason):
                distilling[block] = reason == nil ? distilling[block] : nil
                return verdict(block: block, abortReason: reason)
            case .log(let message, var meta):
                meta["link.id"] = link.name
                return .log(message.contains("failed") || message.contains("rejected") ? .warning : .info, message, meta)
            }
        }
    }
}
