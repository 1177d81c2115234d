import QKDCore
import QKDLink
import QKDTopology
import QKDWire

/// Everything a node decides, with no I/O: one method per event (a peer frame, a control
/// request, the passing of time, a stop, a message the quantum layer or the relay sends), each
/// with its own narrow outcome for the shell to carry out (swift-nio's state-machine style).
/// Every peer frame is validated before the node acts on it (envelope codec, link membership,
/// sender identity, payload shape, by `LinkChannel`) and rejects are counted by reason; a
/// rejected frame changes nothing else.
public struct NodeCore: Sendable {
    public struct Configuration: Sendable {
        public var node: NodeID
        public var topology: Topology
        public var pid: Int32
        public var incarnation: UInt64
        /// The sequence number of this incarnation's first frame on each link (the shell's wall
        /// clock in nanoseconds at start: above everything an earlier incarnation sent).
        public var firstSequence: UInt64
        public var monitor: LinkMonitor.Configuration
        public var pingTimeoutNs: UInt64
        /// The node's ETSI GS QKD 014 endpoint, reported in `status`.
        public var kmeURL: String?

        public init(node: NodeID, topology: Topology, pid: Int32, incarnation: UInt64, firstSequence: UInt64 = 0,
                    monitor: LinkMonitor.Configuration = .init(), pingTimeoutMs: UInt64 = 1000, kmeURL: String? = nil) {
            self.kmeURL = kmeURL
            self.firstSequence = firstSequence
            self.node = node
            self.topology = topology
            self.pid = pid
            self.incarnation = incarnation
            self.monitor = monitor
            self.pingTimeoutNs = pingTimeoutMs * 1_000_000
        }
    }

    public typealias LogLevel = QKDCore.LogLevel

    /// A line for the node's log.
    public struct LogLine: Equatable, Sendable {
        public var level: LogLevel
        public var message: String
        public var metadata: [String: String]

        public init(_ level: LogLevel, _ message: String, _ metadata: [String: String] = [:]) {
            self.level = level
            self.message = message
            self.metadata = metadata
        }
    }

    /// An answer to a control client.
    public struct Answer: Equatable, Sendable {
        public var bytes: [UInt8]
        public var client: [UInt8]
    }

    /// What most events lead to, carried out in this order: frames to send, answers to control
    /// clients, log lines, and inputs for the quantum layer (session changes, then messages).
    public struct Effects: Equatable, Sendable {
        public var sends: [LinkChannel.Transmission] = []
        public var answers: [Answer] = []
        public var logs: [LogLine] = []
        public var quantum: [QuantumLayer.Input] = []

        public init() {}

        static func += (lhs: inout Effects, rhs: Effects) {
            lhs.sends += rhs.sends
            lhs.answers += rhs.answers
            lhs.logs += rhs.logs
            lhs.quantum += rhs.quantum
        }

        static func log(_ level: LogLevel, _ message: String, _ metadata: [String: String] = [:]) -> Effects {
            var e = Effects()
            e.logs = [LogLine(level, message, metadata)]
            return e
        }

        static func answer(_ reply: ControlReply, to client: [UInt8]) -> Effects {
            var e = Effects()
            e.answers = [Answer(bytes: ControlCodec.encode(reply), client: client)]
            return e
        }
    }

    /// A routing or relay message a neighbour sent, for the relay agent.
    public struct RelayMessage: Equatable, Sendable {
        public var kind: MessageKind
        public var payload: [UInt8]
        public var from: NodeID

        public init(kind: MessageKind, payload: [UInt8], from: NodeID) {
            self.kind = kind
            self.payload = payload
            self.from = from
        }
    }

    /// What a peer frame leads to.
    public struct FrameOutcome: Equatable, Sendable {
        public var effects = Effects()
        /// A routing or relay message, for after the link's session changes in `effects`.
        public var relay: RelayMessage?
    }

    /// Every link connected for the first time.
    public struct Readiness: Equatable, Sendable {
        public var linksUp: Int
        public var linksTotal: Int

        public init(linksUp: Int, linksTotal: Int) {
            self.linksUp = linksUp
            self.linksTotal = linksTotal
        }
    }

    /// What the passing of time leads to.
    public struct TickOutcome: Equatable, Sendable {
        public var effects = Effects()
        /// Print the readiness line (once per run).
        public var ready: Readiness?
    }

    /// What a control request leads to: its effects (an answer, mostly), and what the shell
    /// must do that the core cannot (it holds no pools, no relay, no sockets).
    public struct ControlOutcome: Equatable, Sendable {
        public enum Action: Equatable, Sendable {
            /// Nothing more (the answer, if any, is in `effects`).
            case none
            /// Answer with the quantum layer's and the pools' reports.
            case replyPools
            /// Answer with keyed digests of a link's keys (audit).
            case replyDigests(link: String, salt: UInt64)
            /// A `relay`, `routes` or `relayShow` request, for the relay agent.
            case relay(ControlRequest)
            /// Send the link's frames for `peer` through the interposer `via` (nil: directly
            /// again, her key no longer admitted); the `a` end emits its photons into
            /// `transmittance` (nil: the whole channel). Then answer.
            case splice(link: LinkIndex, peer: NodeID, via: InterposerEndpoint?, transmittance: Double?)
            /// Replace the link's pool and transcript-hash key by its bootstrap file's, start its
            /// agreement over, then answer.
            case rebootstrap(link: TopologyLink)
        }

        public var client: [UInt8]
        public var effects = Effects()
        public var action = Action.none
        /// Leave the event loop after the effects (a `shutdown` request).
        public var stop = false
    }

    struct PendingPing: Sendable {
        let client: [UInt8]
        let link: TopologyLink
        let peer: NodeID
        var remaining: Int
        var samples: [Double] = []
        var lost = 0
        var nonce: UInt64 = 0
        var sentAt = Instant(nanoseconds: 0)
    }

    public let configuration: Configuration
    public private(set) var monitor: LinkMonitor
    public private(set) var rejected: [WireError.Code: UInt64] = [:]
    public private(set) var isReady = false
    public private(set) var isStopping = false
    private let startedAt: Instant
    private var ping: PendingPing?
    private var nonces: Xoshiro256
    /// Frames out and in, with the faults injected into this node's link ends.
    public private(set) var channel: LinkChannel
    /// Links whose last block failed parameter estimation (`compromised` while up).
    public private(set) var compromised: Set<LinkIndex> = []
    /// The key relay's counters as the shell last reported them (shown by `status`).
    public var relays: RelayCounters?

    public init(configuration: Configuration, now: Instant) {
        self.configuration = configuration
        self.startedAt = now
        monitor = LinkMonitor(node: configuration.node, links: configuration.topology.links(of: configuration.node),
                              configuration: configuration.monitor, now: now)
        nonces = SeedTree(root: configuration.topology.seed)
            .stream("node/\(configuration.node.rawValue)/ping/\(configuration.incarnation)")
        channel = LinkChannel(node: configuration.node, links: configuration.topology.links(of: configuration.node),
                              faultSeed: SeedTree(root: configuration.topology.seed)
                                  .seed(for: "node/\(configuration.node.rawValue)/faults/\(configuration.incarnation)"),
                              firstSequence: configuration.firstSequence)
    }

    /// A message the transport could not read.
    public mutating func malformed(reason: String) -> LogLine {
        rejected[.malformedPayload, default: 0] += 1
        return LogLine(.warning, "dropped malformed message", ["reason": reason])
    }

    /// A connection the transport refused (its CURVE key is not admitted).
    public mutating func refused(reason: String) -> LogLine {
        rejected[.unauthenticated, default: 0] += 1
        return LogLine(.warning, "refused connection", ["reason": reason])
    }

    /// The link's parameter estimation failed (compromised) or passed again.
    public mutating func verdict(_ link: LinkIndex, compromised isCompromised: Bool, reason: String?) -> LogLine {
        let name = configuration.topology.link(link)?.name ?? "\(link)"
        if isCompromised {
            compromised.insert(link)
            return LogLine(.error, "link compromised: its rounds yield no key", ["link.id": name, "reason": reason ?? ""])
        }
        compromised.remove(link)
        return LogLine(.notice, "link clean again: a block passed parameter estimation", ["link.id": name])
    }

    /// A message of the quantum layer for the peer of `link`: the frame to send now, or nil
    /// (a fault dropped or holds it; not a link of this node).
    public mutating func send(_ kind: MessageKind, _ payload: [UInt8], on link: LinkIndex, at now: Instant) -> LinkChannel.Transmission? {
        channel.send(kind, payload, on: link, at: now)
    }

    /// A routing or relay message for the neighbour `peer`, as `send(_:_:on:at:)`.
    public mutating func send(_ kind: MessageKind, _ payload: [UInt8], toNeighbour peer: NodeID, at now: Instant) -> LinkChannel.Transmission? {
        channel.send(kind, payload, toNeighbour: peer, at: now)
    }

    /// A link's state as reported: `down`, `up`, or `compromised` (up, but its last block
    /// failed parameter estimation).
    public func linkState(_ record: LinkMonitor.Record) -> LinkState {
        guard record.state == .up else { return .down }
        return compromised.contains(record.link.index) ? .compromised : .up
    }

    /// The latest instant by which `tick` must be called.
    public func nextDeadline() -> Instant? {
        var deadline = [monitor.nextDeadline(), channel.nextDue].compactMap { $0 }.min()
        if let ping {
            let pingDeadline = ping.sentAt.advanced(byNanoseconds: configuration.pingTimeoutNs)
            deadline = deadline.map { min($0, pingDeadline) } ?? pingDeadline
        }
        return deadline
    }

    // MARK: Peer frames

    mutating func reject(_ error: WireError, from sender: NodeID) -> FrameOutcome {
        rejected[error.code, default: 0] += 1
        return FrameOutcome(effects: .log(.warning, "dropped frame", ["peer": sender.rawValue, "reason": error.description]))
    }

    /// A frame from `sender` (its routing id): checked by the link channel, then acted on.
    public mutating func receive(frame bytes: [UInt8], from sender: NodeID, at now: Instant) -> FrameOutcome {
        let envelope: Envelope
        switch channel.receive(bytes, from: sender) {
        case .accepted(let e): envelope = e
        case .dropped: return FrameOutcome()
        case .rejected(let error): return reject(error, from: sender)
        }
        guard let record = monitor.record(envelope.link) else {
            return reject(WireError(.unknownLink, "link \(envelope.link) does not end at \(configuration.node)"), from: sender)
        }
        var out = FrameOutcome()
        do {
            switch envelope.kind {
            case .heartbeat:
                let heartbeat = try Heartbeat.decode(envelope.payload)
                out.effects = translate(monitor.received(link: envelope.link, heartbeat: heartbeat, at: now))
            case .goodbye:
                out.effects = translate(monitor.goodbye(link: envelope.link))
            case .ping:
                let probe = try Probe.decode(envelope.payload)
                out.effects = translate(monitor.received(link: envelope.link, heartbeat: nil, at: now))
                out.effects += transmit(.pong, probe.encoded(), on: record, at: now)
            case .pong:
                let probe = try Probe.decode(envelope.payload)
                out.effects = translate(monitor.received(link: envelope.link, heartbeat: nil, at: now))
                out.effects += pong(probe, link: envelope.link, at: now)
            case .quantumFrame, .siftAnnouncement, .siftReply, .estimationReveal, .estimationResult,
                 .cascadeRequest, .cascadeReply, .reconciliationDone, .reconciliationResult, .poolSync:
                out.effects = translate(monitor.received(link: envelope.link, heartbeat: nil, at: now))
                out.effects.quantum.append(.message(envelope.link, envelope.kind, envelope.payload))
            case .linkState, .relayForward, .relayAck, .relayCommit, .relayDone, .relayAbort:
                out.effects = translate(monitor.received(link: envelope.link, heartbeat: nil, at: now))
                out.relay = RelayMessage(kind: envelope.kind, payload: envelope.payload, from: record.peer)
            }
        } catch {
            return reject(error, from: sender)
        }
        return out
    }

    /// Link-monitor directives as effects: a log line, and for state changes and peer restarts
    /// the matching quantum-layer session change. A link that goes down forgets its peer's
    /// sequence numbers (`LinkChannel.forgetSequences`).
    mutating func translate(_ directives: [LinkMonitor.Directive]) -> Effects {
        var out = Effects()
        for directive in directives {
            switch directive {
            case .sendHeartbeat(let link, let peer):
                // Only reached through `tick`, which sends the heartbeat itself.
                out.logs.append(LogLine(.debug, "heartbeat", ["link": "\(link)", "peer": peer.rawValue]))
            case .stateChanged(let link, let state, let reason):
                let name = configuration.topology.link(link)?.name ?? "\(link)"
                out.logs.append(LogLine(state == .up ? .info : .warning, "link \(state.rawValue)", ["link.id": name, "reason": reason]))
                out.quantum.append(state == .up ? .linkUp(link) : .linkDown(link))
                if state == .down { channel.forgetSequences(link) }
            case .peerRestarted(let link, let previous, let current):
                let name = configuration.topology.link(link)?.name ?? "\(link)"
                out.logs.append(LogLine(.notice, "peer restarted", ["link.id": name, "previous": "\(previous)", "current": "\(current)"]))
                out.quantum += [.linkDown(link), .linkUp(link)]
            }
        }
        return out
    }

    /// A message the core itself sends (nothing if a fault drops or holds it).
    mutating func transmit(_ kind: MessageKind, _ payload: [UInt8], on record: LinkMonitor.Record, at now: Instant) -> Effects {
        var out = Effects()
        if let t = channel.send(kind, payload, on: record.link.index, at: now) { out.sends.append(t) }
        return out
    }

    // MARK: Time

    /// The shell handled every frame that had arrived by `instant` (see `LinkMonitor.listened`).
    public mutating func listened(at instant: Instant) { monitor.listened(at: instant) }

    /// What is due at `now`: frames a delay held, heartbeats, links gone silent, readiness, a
    /// ping's timeout.
    public mutating func tick(at now: Instant) -> TickOutcome {
        var out = TickOutcome()
        out.effects.sends = channel.due(at: now)
        for directive in monitor.tick(at: now) {
            if case .sendHeartbeat(let link, _) = directive, let record = monitor.record(link) {
                out.effects += transmit(.heartbeat, Heartbeat(incarnation: configuration.incarnation).encoded(), on: record, at: now)
            } else {
                out.effects += translate([directive])
            }
        }
        if !isReady && monitor.allUp && !isStopping {
            isReady = true
            out.ready = Readiness(linksUp: monitor.linksUp, linksTotal: monitor.records.count)
        }
        if let pending = ping, now.nanoseconds(since: pending.sentAt) >= configuration.pingTimeoutNs {
            ping!.lost += 1
            out.effects += nextPing(at: now)
        }
        return out
    }

    // MARK: Control

    /// A request from a control client (`qkdctl`): answered at once, or handed to the shell.
    public mutating func control(client: [UInt8], request bytes: [UInt8], at now: Instant) -> ControlOutcome {
        var out = ControlOutcome(client: client)
        func answer(_ reply: ControlReply) -> ControlOutcome {
            out.effects = .answer(reply, to: client)
            return out
        }
        let request: ControlRequest
        do {
            request = try ControlCodec.decode(ControlRequest.self, from: bytes)
        } catch {
            rejected[error.code, default: 0] += 1
            return answer(ControlReply(error: error.message))
        }
        switch request {
        case .status:
            return answer(ControlReply(status: status(at: now)))
        case .shutdown:
            out.effects = .answer(ControlReply(ok: true), to: client)
            out.effects += stop(at: now)
            out.stop = true
        case .ping(let link, let count):
            out.effects = startPing(client: client, link: link, count: count, at: now)
        case .pools:
            out.action = .replyPools
        case .keyDigests(let name, let salt):
            guard let link = configuration.topology.link(named: name), link.peer(of: configuration.node) != nil else {
                return answer(ControlReply(error: "keyDigests: link '\(name)' does not end at \(configuration.node)"))
            }
            out.action = .replyDigests(link: link.name, salt: salt)
        case .relay, .routes, .relayShow:
            out.action = .relay(request)
        case .fault(let action):
            out.effects = injectFault(action, client: client)
        case .splice(let link, let via):
            return splice(link, via: via, client: client)
        case .rebootstrap(let name):
            guard let link = configuration.topology.link(named: name), link.peer(of: configuration.node) != nil else {
                return answer(ControlReply(error: "rebootstrap: link '\(name)' does not end at \(configuration.node)"))
            }
            out.action = .rebootstrap(link: link)
        }
        return out
    }

    mutating func splice(_ name: String, via interposer: ControlRequest.Interposer?, client: [UInt8]) -> ControlOutcome {
        var out = ControlOutcome(client: client)
        func fail(_ message: String) -> ControlOutcome {
            out.effects = .answer(ControlReply(error: message), to: client)
            return out
        }
        guard let link = configuration.topology.link(named: name), let peer = link.peer(of: configuration.node) else {
            return fail("splice: link '\(name)' does not end at \(configuration.node)")
        }
        let via = LinkChannel.interposerID(link)
        guard let interposer else {
            monitor.interposed(link.index, false)
            out.action = .splice(link: link.index, peer: peer, via: nil, transmittance: nil)
            out.effects = .log(.notice, "interposer taken out", ["link.id": link.name])
            return out
        }
        guard configuration.topology.node(via) == nil else { return fail("splice: '\(via)' is a node of the topology") }
        var transmittance: Double?
        if link.a == configuration.node {
            guard let t = interposer.transmittance, t > 0, t <= 1 else {
                return fail("splice: the a end needs the transmittance to the interposer, in (0, 1]")
            }
            transmittance = t
        }
        monitor.interposed(link.index, true)
        out.action = .splice(link: link.index, peer: peer, via: .init(endpoint: interposer.endpoint, key: interposer.key, id: via),
                             transmittance: transmittance)
        out.effects = .log(.notice, "interposer spliced in", ["link.id": link.name])
        return out
    }

    /// Undoes a splice the shell could not carry out.
    public mutating func spliceFailed(_ link: LinkIndex) {
        monitor.interposed(link, false)
    }

    mutating func injectFault(_ action: ControlRequest.FaultAction, client: [UInt8]) -> Effects {
        func refuse(_ error: String) -> Effects { .answer(ControlReply(error: error), to: client) }
        var ok = Effects.answer(ControlReply(ok: true), to: client)
        let kind = action.kind
        guard let name = action.link else {
            channel.healAll()
            ok += .log(.notice, "faults healed", ["links": "all"])
            return ok
        }
        guard let link = configuration.topology.link(named: name), link.peer(of: configuration.node) != nil else {
            return refuse("fault: link '\(name)' does not end at \(configuration.node)")
        }
        var f = channel.faults.fault(link.index)
        switch action {
        case .cut: f.cut = true
        case .partition: f.classicalCut = true
        case .delay(_, let ms):
            guard ms >= 0, ms <= 60_000 else { return refuse("fault delay: milliseconds in 0...60000 required, got \(ms)") }
            f.delayNs = UInt64(ms * 1e6)
        case .loss(_, let db):
            guard db >= 0, db <= 100 else { return refuse("fault loss: dB in 0...100 required, got \(db)") }
            f.extraLossDb = db
        case .heal: f = .init()
        }
        channel.setFault(link.index, f)
        ok += .log(.notice, kind == .heal ? "fault healed" : "fault injected",
                   ["link.id": link.name, "fault": kind.rawValue, "now": f.words.joined(separator: ", ")])
        return ok
    }

    public func status(at now: Instant) -> NodeStatusReport {
        let links = monitor.records.map { record in
            LinkStatusReport(
                id: record.link.name, peer: record.peer.rawValue, state: linkState(record),
                heartbeatsReceived: record.heartbeatsReceived,
                lastHeardMsAgo: record.lastHeard.map { Double(now.nanoseconds(since: $0)) / 1e6 },
                peerIncarnation: record.peerIncarnation, faults: channel.faults.fault(record.link.index).words.nilIfEmpty)
        }
        let state: NodePhase = isStopping ? .stopping : (isReady ? .up : .starting)
        return NodeStatusReport(
            id: configuration.node.rawValue, pid: configuration.pid, state: state,
            uptimeSeconds: Double(now.nanoseconds(since: startedAt)) / 1e9,
            incarnation: configuration.incarnation, links: links,
            rejectedFrames: Dictionary(uniqueKeysWithValues: rejected.map { ($0.key.rawValue, $0.value) }),
            kmeURL: configuration.kmeURL, relays: relays)
    }

    mutating func startPing(client: [UInt8], link name: String, count: Int, at now: Instant) -> Effects {
        func fail(_ message: String) -> Effects { .answer(ControlReply(error: message), to: client) }
        guard ping == nil else { return fail("a ping is already running on this node") }
        guard let link = configuration.topology.link(named: name), let peer = link.peer(of: configuration.node) else {
            return fail("ping: link '\(name)' does not end at \(configuration.node)")
        }
        guard (1...100_000).contains(count) else { return fail("count \(count) is outside 1...100000") }
        ping = PendingPing(client: client, link: link, peer: peer, remaining: count)
        return nextPing(at: now)
    }

    mutating func nextPing(at now: Instant) -> Effects {
        guard var pending = ping else { return Effects() }
        if pending.remaining == 0 {
            ping = nil
            let report = PingReport(link: pending.link.name, roundTripsMicroseconds: pending.samples, lost: pending.lost)
            return .answer(ControlReply(ping: report), to: pending.client)
        }
        pending.remaining -= 1
        pending.nonce = nonces.next()
        pending.sentAt = now
        ping = pending
        guard let record = monitor.record(pending.link.index) else { return Effects() }
        return transmit(.ping, Probe(nonce: pending.nonce).encoded(), on: record, at: now)
    }

    mutating func pong(_ probe: Probe, link: LinkIndex, at now: Instant) -> Effects {
        guard let pending = ping, pending.link.index == link, pending.nonce == probe.nonce else {
            return .log(.debug, "stale pong ignored", ["link": "\(link)"])
        }
        ping!.samples.append(Double(now.nanoseconds(since: pending.sentAt)) / 1000)
        return nextPing(at: now)
    }

    // MARK: Shutdown

    /// The node stops: goodbye on every link (once; the shell then leaves its loop).
    public mutating func stop(at now: Instant) -> Effects {
        guard !isStopping else { return Effects() }
        isStopping = true
        var out = Effects.log(.notice, "shutting down")
        for record in monitor.records {
            out += transmit(.goodbye, [], on: record, at: now)
        }
        return out
    }
}

extension Array {
    var nilIfEmpty: Self? { isEmpty ? nil : self }
}
