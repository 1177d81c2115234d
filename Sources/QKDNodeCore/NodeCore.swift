import QKDCore
import QKDLink
import QKDTopology
import QKDWire

/// Everything a node decides, with no I/O: it takes transport events and the time, and
/// returns directives for its shell. It validates every peer frame before acting on it
/// (envelope codec, link membership, sender identity, payload shape) and counts rejects by
/// reason; a rejected frame changes nothing else.
public struct NodeCore: Sendable {
    public struct Configuration: Sendable {
        public var node: NodeID
        public var topology: Topology
        public var pid: Int32
        public var incarnation: UInt64
        public var monitor: LinkMonitor.Configuration
        public var pingTimeoutNs: UInt64
        /// The node's ETSI GS QKD 014 endpoint, reported in `status`.
        public var kmeURL: String?

        public init(node: NodeID, topology: Topology, pid: Int32, incarnation: UInt64,
                    monitor: LinkMonitor.Configuration = .init(), pingTimeoutMs: UInt64 = 1000, kmeURL: String? = nil) {
            self.kmeURL = kmeURL
            self.node = node
            self.topology = topology
            self.pid = pid
            self.incarnation = incarnation
            self.monitor = monitor
            self.pingTimeoutNs = pingTimeoutMs * 1_000_000
        }
    }

    public enum Event: Sendable {
        case peerFrame(from: NodeID, bytes: [UInt8])
        case control(client: [UInt8], request: [UInt8])
        case malformed(reason: String)
        case stopRequested
        case tick
        /// The link's parameter estimation failed (compromised) or passed again.
        case verdict(LinkIndex, compromised: Bool, reason: String?)
    }

    public typealias LogLevel = QKDCore.LogLevel

    public enum Directive: Equatable, Sendable {
        case send(frame: [UInt8], to: NodeID)
        case reply(bytes: [UInt8], to: [UInt8])
        case log(LogLevel, String, [String: String])
        /// All links connected for the first time: print the readiness line.
        case ready(linksUp: Int, linksTotal: Int)
        /// Leave the event loop (after carrying out the directives before this one).
        case stop
        /// Hand this to the quantum worker.
        case quantum(QuantumLayer.Input)
        /// Answer a `pools` request with the worker's reports (the shell holds them).
        case replyPools(to: [UInt8])
        /// Answer a `keyDigests` request (audit) from the key pools.
        case replyDigests(to: [UInt8], link: String, salt: UInt64)
        /// A routing or relay message from a neighbour, for the relay agent.
        case relay(MessageKind, [UInt8], from: NodeID)
        /// A `relay`, `routes` or `relayShow` request, for the relay agent.
        case relayControl(ControlRequest, client: [UInt8])
        /// Send the link's frames for `peer` through the interposer at `endpoint` (nil: directly
        /// again); the `a` end emits its photons into `transmittance` (nil: the whole channel).
        /// Then answer `client`.
        case splice(link: LinkIndex, peer: NodeID, endpoint: String?, transmittance: Double?, client: [UInt8])
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
    /// Links this end sends through an interposer. Frames of a link are accepted from the peer
    /// and from the link's interposer id (`eve:LINK`, reserved: never a node's), whether or not
    /// this end has been told yet: the other end may send through it first, and frames in
    /// flight when it is taken out still arrive.
    public private(set) var splices: [LinkIndex: NodeID] = [:]

    public init(configuration: Configuration, now: Instant) {
        self.configuration = configuration
        self.startedAt = now
        monitor = LinkMonitor(node: configuration.node, links: configuration.topology.links(of: configuration.node),
                              configuration: configuration.monitor, now: now)
        nonces = SeedTree(root: configuration.topology.seed)
            .stream("node/\(configuration.node.rawValue)/ping/\(configuration.incarnation)")
        channel = LinkChannel(node: configuration.node, links: configuration.topology.links(of: configuration.node),
                              faultSeed: SeedTree(root: configuration.topology.seed)
                                  .seed(for: "node/\(configuration.node.rawValue)/faults/\(configuration.incarnation)"))
    }

    /// Handles one event at `now`.
    public mutating func handle(_ event: Event, at now: Instant) -> [Directive] {
        switch event {
        case .peerFrame(let sender, let bytes):
            return peerFrame(from: sender, bytes: bytes, at: now)
        case .control(let client, let request):
            return control(client: client, request: request, at: now)
        case .malformed(let reason):
            rejected[.malformedPayload, default: 0] += 1
            return [.log(.warning, "dropped malformed message", ["reason": reason])]
        case .stopRequested:
            return stop(at: now)
        case .tick:
            return tick(at: now)
        case .verdict(let link, let isCompromised, let reason):
            let name = configuration.topology.link(link)?.name ?? "\(link)"
            if isCompromised {
                compromised.insert(link)
                return [.log(.error, "link compromised: its rounds yield no key", ["link.id": name, "reason": reason ?? ""])]
            }
            compromised.remove(link)
            return [.log(.notice, "link clean again: a block passed parameter estimation", ["link.id": name])]
        }
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

    /// The latest instant by which `.tick` must be handled.
    public func nextDeadline() -> Instant? {
        var deadline = [monitor.nextDeadline(), channel.nextDue].compactMap { $0 }.min()
        if let ping {
            let pingDeadline = ping.sentAt.advanced(byNanoseconds: configuration.pingTimeoutNs)
            deadline = deadline.map { min($0, pingDeadline) } ?? pingDeadline
        }
        return deadline
    }

    // MARK: Peer frames

    mutating func reject(_ error: WireError, from sender: NodeID) -> [Directive] {
        rejected[error.code, default: 0] += 1
        return [.log(.warning, "dropped frame", ["peer": sender.rawValue, "reason": error.description])]
    }

    mutating func peerFrame(from sender: NodeID, bytes: [UInt8], at now: Instant) -> [Directive] {
        let envelope: Envelope
        switch channel.receive(bytes, from: sender) {
        case .accepted(let e): envelope = e
        case .dropped: return []
        case .rejected(let error): return reject(error, from: sender)
        }
        guard let record = monitor.record(envelope.link) else {
            return reject(WireError(.unknownLink, "link \(envelope.link) does not end at \(configuration.node)"), from: sender)
        }
        do {
            switch envelope.kind {
            case .heartbeat:
                let heartbeat = try Heartbeat.decode(envelope.payload)
                return monitor.received(link: envelope.link, heartbeat: heartbeat, at: now).flatMap(translate)
            case .goodbye:
                return monitor.goodbye(link: envelope.link).flatMap(translate)
            case .ping:
                let probe = try Probe.decode(envelope.payload)
                var out = monitor.received(link: envelope.link, heartbeat: nil, at: now).flatMap(translate)
                out += transmit(.pong, probe.encoded(), on: record, at: now)
                return out
            case .pong:
                let probe = try Probe.decode(envelope.payload)
                var out = monitor.received(link: envelope.link, heartbeat: nil, at: now).flatMap(translate)
                out += pong(probe, link: envelope.link, at: now)
                return out
            case .quantumFrame, .siftAnnouncement, .siftReply, .estimationReveal, .estimationResult,
                 .cascadeRequest, .cascadeReply, .reconciliationDone, .reconciliationResult, .poolSync:
                var out = monitor.received(link: envelope.link, heartbeat: nil, at: now).flatMap(translate)
                out += quantumLayer(envelope, from: record, at: now)
                return out
            case .linkState, .relayForward, .relayAck, .relayCommit, .relayDone, .relayAbort:
                var out = monitor.received(link: envelope.link, heartbeat: nil, at: now).flatMap(translate)
                out.append(.relay(envelope.kind, envelope.payload, from: record.peer))
                return out
            }
        } catch {
            return reject(error, from: sender)
        }
    }

    /// A link-monitor directive as node directives: a log line, and for state changes and
    /// peer restarts the matching quantum-layer session change.
    func translate(_ directive: LinkMonitor.Directive) -> [Directive] {
        switch directive {
        case .sendHeartbeat(let link, let peer):
            // Only reached through `tick`, which builds the frame itself.
            return [.log(.debug, "heartbeat", ["link": "\(link)", "peer": peer.rawValue])]
        case .stateChanged(let link, let state, let reason):
            let name = configuration.topology.link(link)?.name ?? "\(link)"
            return [.log(state == .up ? .info : .warning, "link \(state.rawValue)", ["link.id": name, "reason": reason]),
                    .quantum(state == .up ? .linkUp(link) : .linkDown(link))]
        case .peerRestarted(let link, let previous, let current):
            let name = configuration.topology.link(link)?.name ?? "\(link)"
            return [.log(.notice, "peer restarted", ["link.id": name, "previous": "\(previous)", "current": "\(current)"]),
                    .quantum(.linkDown(link)), .quantum(.linkUp(link))]
        }
    }

    /// The `send` directive of a message the core itself sends (none if a fault drops or holds it).
    mutating func transmit(_ kind: MessageKind, _ payload: [UInt8], on record: LinkMonitor.Record, at now: Instant) -> [Directive] {
        channel.send(kind, payload, on: record.link.index, at: now).map { [.send(frame: $0.frame, to: $0.peer)] } ?? []
    }

    /// Messages of the quantum layer: handed to the link's engine on the worker.
    mutating func quantumLayer(_ envelope: Envelope, from record: LinkMonitor.Record, at now: Instant) -> [Directive] {
        [.quantum(.message(envelope.link, envelope.kind, envelope.payload))]
    }

    // MARK: Time

    /// The shell handled every frame that had arrived by `instant` (see `LinkMonitor.listened`).
    public mutating func listened(at instant: Instant) { monitor.listened(at: instant) }

    mutating func tick(at now: Instant) -> [Directive] {
        var out: [Directive] = channel.due(at: now).map { .send(frame: $0.frame, to: $0.peer) }
        for directive in monitor.tick(at: now) {
            if case .sendHeartbeat(let link, _) = directive, let record = monitor.record(link) {
                out += transmit(.heartbeat, Heartbeat(incarnation: configuration.incarnation).encoded(), on: record, at: now)
            } else {
                out += translate(directive)
            }
        }
        if !isReady && monitor.allUp && !isStopping {
            isReady = true
            out.append(.ready(linksUp: monitor.linksUp, linksTotal: monitor.records.count))
        }
        if let pending = ping, now.nanoseconds(since: pending.sentAt) >= configuration.pingTimeoutNs {
            ping!.lost += 1
            out += nextPing(at: now)
        }
        return out
    }

    // MARK: Control

    mutating func control(client: [UInt8], request bytes: [UInt8], at now: Instant) -> [Directive] {
        let request: ControlRequest
        do {
            request = try ControlCodec.decode(ControlRequest.self, from: bytes)
        } catch {
            rejected[error.code, default: 0] += 1
            return [.reply(bytes: ControlCodec.encode(ControlReply(error: error.message)), to: client)]
        }
        switch request {
        case .status:
            return [.reply(bytes: ControlCodec.encode(ControlReply(status: status(at: now))), to: client)]
        case .shutdown:
            return [.reply(bytes: ControlCodec.encode(ControlReply(ok: true)), to: client)] + stop(at: now)
        case .ping(let link, let count):
            return startPing(client: client, link: link, count: count, at: now)
        case .pools:
            return [.replyPools(to: client)]
        case .keyDigests(let name, let salt):
            guard let link = configuration.topology.link(named: name), link.peer(of: configuration.node) != nil else {
                return [.reply(bytes: ControlCodec.encode(ControlReply(error: "keyDigests: link '\(name)' does not end at \(configuration.node)")),
                               to: client)]
            }
            return [.replyDigests(to: client, link: link.name, salt: salt)]
        case .relay, .routes, .relayShow:
            return [.relayControl(request, client: client)]
        case .fault(let action):
            return injectFault(action, client: client)
        case .splice(let link, let via):
            return splice(link, via: via, client: client)
        }
    }

    mutating func splice(_ name: String, via interposer: ControlRequest.Interposer?, client: [UInt8]) -> [Directive] {
        func fail(_ message: String) -> [Directive] { [.reply(bytes: ControlCodec.encode(ControlReply(error: message)), to: client)] }
        guard let link = configuration.topology.link(named: name), let peer = link.peer(of: configuration.node) else {
            return fail("splice: link '\(name)' does not end at \(configuration.node)")
        }
        let via = LinkChannel.interposerID(link)
        guard let interposer else {
            splices[link.index] = nil
            monitor.interposed(link.index, false)
            return [.splice(link: link.index, peer: peer, endpoint: nil, transmittance: nil, client: client),
                    .log(.notice, "interposer taken out", ["link.id": link.name])]
        }
        guard configuration.topology.node(via) == nil else { return fail("splice: '\(via)' is a node of the topology") }
        var transmittance: Double?
        if link.a == configuration.node {
            guard let t = interposer.transmittance, t > 0, t <= 1 else {
                return fail("splice: the a end needs the transmittance to the interposer, in (0, 1]")
            }
            transmittance = t
        }
        splices[link.index] = via
        monitor.interposed(link.index, true)
        return [.splice(link: link.index, peer: peer, endpoint: interposer.endpoint, transmittance: transmittance, client: client),
                .log(.notice, "interposer spliced in", ["link.id": link.name])]
    }

    /// Undoes a splice the shell could not carry out.
    public mutating func spliceFailed(_ link: LinkIndex) {
        splices[link] = nil
        monitor.interposed(link, false)
    }

    mutating func injectFault(_ action: ControlRequest.FaultAction, client: [UInt8]) -> [Directive] {
        func reply(_ error: String?) -> [Directive] {
            [.reply(bytes: ControlCodec.encode(error.map { ControlReply(error: $0) } ?? ControlReply(ok: true)), to: client)]
        }
        let kind = action.kind
        guard let name = action.link else {
            channel.healAll()
            return reply(nil) + [.log(.notice, "faults healed", ["links": "all"])]
        }
        guard let link = configuration.topology.link(named: name), link.peer(of: configuration.node) != nil else {
            return reply("fault: link '\(name)' does not end at \(configuration.node)")
        }
        var f = channel.faults.fault(link.index)
        switch action {
        case .cut: f.cut = true
        case .partition: f.classicalCut = true
        case .delay(_, let ms):
            guard ms >= 0, ms <= 60_000 else { return reply("fault delay: milliseconds in 0...60000 required, got \(ms)") }
            f.delayNs = UInt64(ms * 1e6)
        case .loss(_, let db):
            guard db >= 0, db <= 100 else { return reply("fault loss: dB in 0...100 required, got \(db)") }
            f.extraLossDb = db
        case .heal: f = .init()
        }
        channel.setFault(link.index, f)
        return reply(nil) + [.log(.notice, kind == .heal ? "fault healed" : "fault injected",
                                  ["link.id": link.name, "fault": kind.rawValue, "now": f.words.joined(separator: ", ")])]
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

    mutating func startPing(client: [UInt8], link name: String, count: Int, at now: Instant) -> [Directive] {
        func fail(_ message: String) -> [Directive] {
            [.reply(bytes: ControlCodec.encode(ControlReply(error: message)), to: client)]
        }
        guard ping == nil else { return fail("a ping is already running on this node") }
        guard let link = configuration.topology.link(named: name), let peer = link.peer(of: configuration.node) else {
            return fail("ping: link '\(name)' does not end at \(configuration.node)")
        }
        guard (1...100_000).contains(count) else { return fail("count \(count) is outside 1...100000") }
        ping = PendingPing(client: client, link: link, peer: peer, remaining: count)
        return nextPing(at: now)
    }

    mutating func nextPing(at now: Instant) -> [Directive] {
        guard var pending = ping else { return [] }
        if pending.remaining == 0 {
            ping = nil
            let report = PingReport(link: pending.link.name, roundTripsMicroseconds: pending.samples, lost: pending.lost)
            return [.reply(bytes: ControlCodec.encode(ControlReply(ping: report)), to: pending.client)]
        }
        pending.remaining -= 1
        pending.nonce = nonces.next()
        pending.sentAt = now
        ping = pending
        guard let record = monitor.record(pending.link.index) else { return [] }
        return transmit(.ping, Probe(nonce: pending.nonce).encoded(), on: record, at: now)
    }

    mutating func pong(_ probe: Probe, link: LinkIndex, at now: Instant) -> [Directive] {
        guard let pending = ping, pending.link.index == link, pending.nonce == probe.nonce else {
            return [.log(.debug, "stale pong ignored", ["link": "\(link)"])]
        }
        ping!.samples.append(Double(now.nanoseconds(since: pending.sentAt)) / 1000)
        return nextPing(at: now)
    }

    // MARK: Shutdown

    mutating func stop(at now: Instant) -> [Directive] {
        guard !isStopping else { return [] }
        isStopping = true
        var out: [Directive] = [.log(.notice, "shutting down", [:])]
        for record in monitor.records {
            out += transmit(.goodbye, [], on: record, at: now)
        }
        out.append(.stop)
        return out
    }
}

extension Array {
    var nilIfEmpty: Self? { isEmpty ? nil : self }
}
