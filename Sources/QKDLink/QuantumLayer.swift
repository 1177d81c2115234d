import QKDCore
import QKDKeyPool
import QKDTopology
import QKDWire

/// A node's quantum layer, as one pure instance: the `QuantumLinkEngine` and the
/// `PoolAgreement` of each of its links. The node's worker thread owns one and steps it; the
/// deterministic in-process network steps one per node on a manual clock.
///
/// Contract: `tick(at:pools:)` MUST be called no later than `nextDeadline(after:)`; instants
/// never decrease. The pools are reached only for the work that needs them: pool agreement,
/// link changes, and reconciliation's operations (it spends authentication keys and deposits
/// distilled keys: `LinkPoolOperations`, one `modify` each); frames, sifting, estimation and
/// reconciliation's computations never touch them, so a shell that locks its pools for
/// `modify` holds the lock only that long.
public struct QuantumLayer: Sendable {
    public enum Input: Sendable, Equatable {
        case message(LinkIndex, MessageKind, [UInt8])
        case linkUp(LinkIndex)
        case linkDown(LinkIndex)
        /// The `a` end emits into this transmittance (an interposer's point) or, with nil, the
        /// whole channel again.
        case channel(LinkIndex, transmittance: Double?)
        /// The link was provisioned afresh (`qkdctl node reset` of the peer; its pool already
        /// holds the new pre-shared keys): this transcript-hash key from the next session on, and
        /// a pool agreement that starts over (the peer's nonces restart with its new store).
        case rebootstrap(LinkIndex, authenticationKey: UInt128)
    }

    public enum Output: Sendable, Equatable {
        case send(LinkIndex, MessageKind, [UInt8])
        case log(LogLevel, String, [String: String])
        /// A link became compromised (parameter estimation failed) or clean again.
        case verdict(LinkIndex, compromised: Bool, reason: String?)
    }

    struct End: Sendable {
        var engine: QuantumLinkEngine
        var agreement: PoolAgreement
    }

    private var ends: [End]
    private var position: [LinkIndex: Int] = [:]

    /// `epoch`: how many times the node's store was opened (part of every pool-agreement
    /// nonce). `authenticationKeys`: each link's transcript-hash key (`LinkBootstrap`).
    /// `engine` makes each link's engine (tests choose smaller blocks).
    public init(node: NodeID, topology: Topology, epoch: UInt64, now: Instant, authenticationKeys: [String: UInt128],
                engine: ((TopologyLink) -> QuantumLinkEngine)? = nil) {
        let drives = QuantumLayer.drives(of: node, topology: topology, now: now)
        let make = engine ?? {
            QuantumLinkEngine(link: $0, node: node, topologySeed: topology.seed, secrecy: topology.secrecy,
                              authenticationKey: authenticationKeys[$0.name] ?? 0, timeScale: topology.timeScale, now: now,
                              drive: drives[$0.index])
        }
        ends = topology.links(of: node).map { link in
            End(engine: make(link),
                agreement: PoolAgreement(role: link.a == node ? .offerer : .answerer, link: link.name, epoch: epoch))
        }
        for (i, end) in ends.enumerated() { position[end.engine.link.index] = i }
    }

    /// The pacing of each of `node`'s free-space links: the mission's timeline pinned to its
    /// origin (`qkdctl up` gives every node of a run the same; without one, `now`).
    public static func drives(of node: NodeID, topology: Topology, now: Instant) -> [LinkIndex: FreeSpaceDrive] {
        let links = topology.links(of: node).filter(\.isFreeSpace)
        guard !links.isEmpty, let timeline = topology.missionTimeline else { return [:] }
        let clock = MissionClock(timeline: timeline, origin: topology.mission?.origin ?? now)
        var out: [LinkIndex: FreeSpaceDrive] = [:]
        for link in links { out[link.index] = FreeSpaceDrive(link: link, topology: topology, clock: clock) }
        return out
    }

    /// Every link's report, as of the last step.
    public var reports: [QuantumLinkReport] { ends.map(\.engine.currentReport) }

    /// The engine of a link (for tests and reports).
    public func engine(_ link: LinkIndex) -> QuantumLinkEngine? { position[link].map { ends[$0].engine } }

    /// Whether a link's pool agreed with its peer's since the link last came up.
    public func isAgreed(_ link: LinkIndex) -> Bool { position[link].map { ends[$0].agreement.isAgreed } ?? false }

    /// Emits the frames the clock calls for, gives up on unanswered rounds, and repeats
    /// unanswered pool offers.
    public mutating func tick(at now: Instant, pools: inout some LinkPoolAccess) -> [Output] {
        var out: [Output] = []
        for i in ends.indices {
            let index = ends[i].engine.link.index
            out += ends[i].engine.tick(at: now).compactMap { Self.output($0, link: index) }
            if ends[i].agreement.nextDeadline().map({ $0 <= now }) ?? false {
                let directives = pools.modify(ends[i].agreement.link) { ends[i].agreement.tick(at: now, pool: &$0) } ?? []
                out += carryOut(directives, end: i, at: now)
            }
        }
        return out
    }

    /// When `tick` must next run: Alice's next frame, or an offer to repeat.
    public func nextDeadline(after now: Instant) -> Instant? {
        var earliest: Instant?
        for i in ends.indices {
            for deadline in [ends[i].engine.nextDeadline(after: now), ends[i].agreement.nextDeadline()] {
                if let deadline, earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
            }
        }
        return earliest
    }

    /// One input from the node: a message from the link's peer, or a link change.
    public mutating func handle(_ input: Input, at now: Instant, pools: inout some LinkPoolAccess) -> [Output] {
        switch input {
        case .message(let link, .poolSync, let payload):
            guard let i = position[link] else { return [] }
            let sync: PoolSync
            do {
                sync = try PoolSync.decode(payload)
            } catch {
                return [.log(.warning, "pool sync rejected", ["link.id": ends[i].engine.link.name, "reason": "\(error)"])]
            }
            let directives = pools.modify(ends[i].engine.link.name) { ends[i].agreement.received(sync, at: now, pool: &$0) } ?? []
            return carryOut(directives, end: i, at: now)
        case .message(let link, let kind, let payload):
            guard let i = position[link] else { return [] }
            var pool = LinkPoolOperations(access: pools, link: ends[i].engine.link.name)
            let effects = ends[i].engine.received(kind, payload, at: now, pool: &pool)
            pools = pool.access
            var out = effects.compactMap { Self.output($0, link: link) }
            if effects.contains(where: { if case .passDistilled = $0 { true } else { false } }) {
                let directives = pools.modify(ends[i].engine.link.name) { ends[i].agreement.agreeAgain(at: now, pool: &$0) } ?? []
                out += carryOut(directives, end: i, at: now)
            }
            return out
        case .linkUp(let link):
            guard let i = position[link] else { return [] }
            let directives = pools.modify(ends[i].engine.link.name) { ends[i].agreement.linkUp(at: now, pool: &$0) } ?? []
            return carryOut(directives, end: i, at: now)
        case .linkDown(let link):
            guard let i = position[link] else { return [] }
            let directives = pools.modify(ends[i].engine.link.name) { ends[i].agreement.linkDown(pool: &$0) } ?? []
            return carryOut(directives, end: i, at: now)
        case .channel(let link, let transmittance):
            guard let i = position[link] else { return [] }
            ends[i].engine.emissionTransmittance = transmittance
            return []
        case .rebootstrap(let link, let key):
            guard let i = position[link] else { return [] }
            let name = ends[i].engine.link.name
            let wasUp = ends[i].agreement.isUp
            var directives = pools.modify(name) { ends[i].agreement.linkDown(pool: &$0) } ?? []
            ends[i].engine.authenticationKey = key
            let old = ends[i].agreement
            ends[i].agreement = PoolAgreement(role: old.role, link: old.link, epoch: old.epoch, retryNs: old.retryNs)
            if wasUp { directives += pools.modify(name) { ends[i].agreement.linkUp(at: now, pool: &$0) } ?? [] }
            return [.log(.notice, "link provisioned afresh: new pre-shared keys, pool agreement starts over", ["link.id": name])]
                + carryOut(directives, end: i, at: now)
        }
    }

    /// Applies the agreement's session changes to the link's engine.
    private mutating func carryOut(_ directives: [PoolAgreement.Directive], end i: Int, at now: Instant) -> [Output] {
        let link = ends[i].engine.link.index
        var out: [Output] = []
        for directive in directives {
            switch directive {
            case .send(let sync): out.append(.send(link, .poolSync, sync.encoded()))
            case .stopSession: ends[i].engine.stop(at: now)
            case .startSession(let session, let confirmed): ends[i].engine.start(session: session, at: now, confirmedKeys: confirmed)
            case .log(let level, let message, let metadata): out.append(.log(level, message, metadata))
            }
        }
        return out
    }

    private static func output(_ effect: QuantumLinkEngine.Effect, link: LinkIndex) -> Output? {
        switch effect {
        case .send(let kind, let payload): .send(link, kind, payload)
        case .log(let level, let message, let metadata): .log(level, message, metadata)
        case .block: nil  // already handed to the link's distiller inside the engine
        case .passDistilled: nil  // the layer agrees the pools again
        case .verdict(let compromised, let reason): .verdict(link, compromised: compromised, reason: reason)
        }
    }
}
