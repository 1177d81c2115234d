import QKDCore
import QKDTopology
import QKDWire

/// Liveness of a node's links, as a pure state machine. A link is `up` while frames from
/// the peer keep arriving (heartbeats every `heartbeatInterval`); it goes `down` when nothing
/// arrived for `timeout`, or at once when the peer says goodbye.
///
/// Contract: `tick(at:)` MUST be called no later than `nextDeadline()`; instants passed in
/// never decrease.
public struct LinkMonitor: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var heartbeatIntervalNs: UInt64
        public var timeoutNs: UInt64

        public init(heartbeatIntervalMs: UInt64 = 200, timeoutMs: UInt64 = 1000) {
            heartbeatIntervalNs = heartbeatIntervalMs * 1_000_000
            timeoutNs = timeoutMs * 1_000_000
        }
    }

    public enum State: String, Sendable {
        case up, down
    }

    public struct Record: Sendable, Equatable {
        public let link: TopologyLink
        public let peer: NodeID
        public internal(set) var state: State = .down
        public internal(set) var lastHeard: Instant?
        public internal(set) var heartbeatsReceived: UInt64 = 0
        public internal(set) var peerIncarnation: UInt64?
        /// The link's frames pass through an interposer process (an eavesdropper spliced in).
        public internal(set) var interposed = false
        var nextHeartbeat: Instant
    }

    public enum Directive: Equatable, Sendable {
        case sendHeartbeat(link: LinkIndex, to: NodeID)
        case stateChanged(link: LinkIndex, state: State, reason: String)
        case peerRestarted(link: LinkIndex, previous: UInt64, current: UInt64)
    }

    public let configuration: Configuration
    public private(set) var records: [Record]
    private var position: [LinkIndex: Int] = [:]
    /// The latest instant by which every frame that had arrived was handled (`listened(at:)`);
    /// nil: always up to date (the caller never reports it).
    private var listenedUntil: Instant?

    public init(node: NodeID, links: [TopologyLink], configuration: Configuration = .init(),
                now: Instant) {
        self.configuration = configuration
        records = links.compactMap { link in
            link.peer(of: node).map { Record(link: link, peer: $0, nextHeartbeat: now) }
        }
        for (i, record) in records.enumerated() { position[record.link.index] = i }
    }

    public func record(_ link: LinkIndex) -> Record? { position[link].map { records[$0] } }

    public var linksUp: Int { records.filter { $0.state == .up }.count }

    public var allUp: Bool { records.allSatisfy { $0.state == .up } }

    /// Any authentic frame from the link's peer proves it alive; a heartbeat also carries
    /// the peer's incarnation.
    public mutating func received(link: LinkIndex, heartbeat: Heartbeat?, at now: Instant)
        -> [Directive]
    {
        guard let i = position[link] else { return [] }
        var directives: [Directive] = []
        records[i].lastHeard = now
        if let heartbeat {
            records[i].heartbeatsReceived += 1
            if let previous = records[i].peerIncarnation, previous != heartbeat.incarnation {
                directives.append(.peerRestarted(link: link, previous: previous, current: heartbeat.incarnation))
                records[i].nextHeartbeat = now  // answer at once: the restarted peer learns the link is up
            }
            records[i].peerIncarnation = heartbeat.incarnation
        }
        if records[i].state == .down {
            records[i].state = .up
            records[i].nextHeartbeat = min(records[i].nextHeartbeat, now)  // the peer hears back at once
            directives.append(.stateChanged(link: link, state: .up, reason: "frames from \(records[i].peer) arriving"))
        }
        return directives
    }

    /// The peer announced a graceful shutdown.
    public mutating func goodbye(link: LinkIndex) -> [Directive] {
        guard let i = position[link], records[i].state == .up else { return [] }
        records[i].state = .down
        return [.stateChanged(link: link, state: .down, reason: "\(records[i].peer) shut down")]
    }

    /// The node handled every frame that had arrived by `instant` (its shell drained the socket).
    /// Silence is measured up to there only: a node whose own loop stalled (CPU starvation, a
    /// long step) must not blame its peers for frames that wait unread in its socket.
    public mutating func listened(at instant: Instant) { listenedUntil = instant }

    /// Sends due heartbeats and takes down links whose peer fell silent (silent up to the last
    /// instant the node listened, see `listened(at:)`).
    /// How long a link may be silent before it is down: `timeoutNs`, three times that while an
    /// interposer process carries its frames. Every frame then takes two more thread wake-ups
    /// (in and out of her process); on a loaded machine (the 16-city mesh on two cores) those
    /// added up to a second of silence every 10-40 s on the spliced link alone, which a fibre
    /// with a tap in it does not have. A cut is then seen after 3 s instead of 1 s.
    func timeout(_ record: Record) -> UInt64 {
        record.interposed ? 3 * configuration.timeoutNs : configuration.timeoutNs
    }

    /// Marks a link as carried through an interposer (or directly again).
    public mutating func interposed(_ link: LinkIndex, _ on: Bool) {
        if let i = position[link] { records[i].interposed = on }
    }

    public mutating func tick(at now: Instant) -> [Directive] {
        let observed = listenedUntil.map { min($0, now) } ?? now
        var directives: [Directive] = []
        for i in records.indices {
            if now >= records[i].nextHeartbeat {
                directives.append(.sendHeartbeat(link: records[i].link.index, to: records[i].peer))
                var next = records[i].nextHeartbeat.advanced(byNanoseconds: configuration.heartbeatIntervalNs)
                if next <= now { next = now.advanced(byNanoseconds: configuration.heartbeatIntervalNs) }
                records[i].nextHeartbeat = next
            }
            if records[i].state == .up, let heard = records[i].lastHeard,
               observed.nanoseconds(since: heard) >= timeout(records[i])
            {
                records[i].state = .down
                let silentMs = observed.nanoseconds(since: heard) / 1_000_000
                directives.append(.stateChanged(link: records[i].link.index, state: .down,
                                                reason: "no frame from \(records[i].peer) for \(silentMs) ms"))
            }
        }
        return directives
    }

    /// The latest instant by which `tick(at:)` must run again.
    public func nextDeadline() -> Instant? {
        var deadline: Instant?
        for record in records {
            var candidate = record.nextHeartbeat
            if record.state == .up, let heard = record.lastHeard {
                candidate = min(candidate, heard.advanced(byNanoseconds: timeout(record)))
            }
            deadline = deadline.map { min($0, candidate) } ?? candidate
        }
        return deadline
    }
}
