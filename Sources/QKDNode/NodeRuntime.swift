import Logging
import QKDCore
import QKDLink
import QKDNodeCore
import QKDTopology
import QKDTransport
import QKDWire
#if canImport(Glibc)
import Glibc
#endif

/// The shell around `NodeCore`: it owns the transport, reads the clock, and carries out the
/// core's directives. It runs on the thread that calls `run()` until the core says stop.
public final class NodeRuntime {
    private var core: NodeCore
    private let transport: any NodeTransport
    private let clock: any QKDClock
    private var logger: Logger
    private let announceReady: (String) -> Void
    private let worker: (any QuantumDriver)?
    public let pools: NodePools
    private let relayAgent: RelayAgent
    private let keyRequests: KeyRequests?
    /// Per link: (wall ns, emulated s, committed bits) samples of the last `rateWindowNs`,
    /// for the current key rate (a slope: the constant distillation backlog cancels out).
    private var rateSamples: [String: [(UInt64, Double, UInt64)]] = [:]
    private let rateWindowNs: UInt64 = 10_000_000_000
    /// Longest wait in one poll, so a missed wake-up costs at most this much.
    private let maxWaitMs = 100
    /// When the last step began.
    private var lastStep: Instant?
    /// Frames held back by an injected delay, in the order they were sent.

    /// Where the node's quantum layer runs.
    public enum QuantumMode {
        /// No quantum layer: the classical spine only.
        case off
        /// On the quantum worker thread (`qkd-node`).
        case worker
        /// On the event loop's own thread, stepped with it (the deterministic in-process
        /// network: one thread, a manual clock). `engine` makes each link's engine (nil: the
        /// topology's defaults).
        case inline(engine: (@Sendable (TopologyLink) -> QuantumLinkEngine)?)
    }

    public init(core: NodeCore, transport: any NodeTransport, clock: any QKDClock, logger: Logger, pools: NodePools,
                quantum: QuantumMode = .worker, keyRequests: KeyRequests? = nil, announceReady: @escaping (String) -> Void) {
        self.pools = pools
        self.keyRequests = keyRequests
        let node = core.configuration.node, topology = core.configuration.topology
        relayAgent = RelayAgent(node: node, topology: topology, pools: pools)
        switch quantum {
        case .off: worker = nil
        case .worker: worker = QuantumWorker(node: node, topology: topology, clock: clock, waker: transport.makeWaker(), pools: pools)
        case .inline(let engine):
            worker = InlineQuantumLayer(layer: QuantumLayer(node: node, topology: topology, epoch: pools.starts, now: clock.now(), engine: engine),
                                        pools: pools, clock: clock, waker: transport.makeWaker())
        }
        self.core = core
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.announceReady = announceReady
    }

    /// The readiness line a node prints, once, when all its links are up.
    public static func readinessLine(node: String, pid: Int32, linksUp: Int, linksTotal: Int) -> String {
        "QKDNET READY node=\(node) pid=\(pid) links=\(linksUp)/\(linksTotal)"
    }

    /// Runs the event loop until a stop is requested, then closes the transport.
    public func run() {
        var running = start()
        while running { running = step().running }
        finish()
    }

    /// Starts the quantum layer and handles the first tick; false if the node stops at once.
    public func start() -> Bool {
        worker?.start()
        return execute(core.handle(.tick, at: clock.now()))
    }

    /// The earliest instant something is due: a heartbeat, a link's silence, an
    /// advertisement, a delayed frame, the quantum layer's next frame (when it runs inline), and
    /// at the latest `maxWaitMs` after the last step (the loop never waits longer: relay
    /// timeouts and key expiry are checked on every step).
    public func nextDeadline() -> Instant {
        let now = clock.now()
        let latest = (lastStep ?? now).advanced(byNanoseconds: UInt64(maxWaitMs) * 1_000_000)
        return [core.nextDeadline(), relayAgent.nextDeadline(after: now), worker?.nextDeadline(after: now)]
            .compactMap { $0 }.reduce(latest, min)
    }

    /// One turn of the event loop: waits for events until the next deadline (at most
    /// `timeoutMs`; nil: `maxWaitMs`), handles them, then whatever is due. Returns whether the
    /// node runs on and how many events it handled.
    public func step(timeoutMs: Int? = nil) -> (running: Bool, events: Int) {
        var running = true
        let now = clock.now()
        let timeout = min(timeoutMs ?? maxWaitMs, Int((nextDeadline().nanoseconds(since: now) + 999_999) / 1_000_000))
        lastStep = now
        // Frames that arrived before this instant come out of this wait (and are handled
        // below): link silence is measured up to here, not across a stall of this loop.
        let listening = clock.now()
        let events = transport.wait(timeoutMs: timeout)
        for event in events where running {
            if event == .wake {
                running = drainWorker()
                for request in keyRequests?.takeAll() ?? [] where running {
                    running = perform(relayAgent.application(request, at: clock.now()))
                }
            } else {
                if case .control = event { core.relays = relayAgent.counters }
                running = execute(core.handle(translate(event), at: clock.now()))
            }
        }
        core.listened(at: listening)
        worker?.poll(at: clock.now())
        if running { running = drainWorker() }
        if running { running = execute(core.handle(.tick, at: clock.now())) }
        if running { running = perform(relayAgent.tick(at: clock.now(), links: core.monitor.records.map {
            ($0.link, $0.state == .up, core.compromised.contains($0.link.index))
        })) }
        return (running, events.count)
    }

    /// The node's status as `qkdctl status` reports it. Only from the loop's own thread (the
    /// deterministic network reads it between steps instead of asking over the control path).
    public func statusReport() -> NodeStatusReport {
        core.relays = relayAgent.counters
        return core.status(at: clock.now())
    }

    /// After the loop: refuses waiting key requests, joins the quantum worker (it touches the
    /// pools no more), closes the transport. The caller closes the store after this.
    public func finish() {
        keyRequests?.close()
        relayAgent.abandonApplications()
        worker?.stop()
        transport.close()
        logger.notice("stopped")
    }

    private func translate(_ event: TransportEvent) -> NodeCore.Event {
        switch event {
        case .peer(let from, let frame): .peerFrame(from: from, bytes: frame)
        case .control(let client, let request): .control(client: client, request: request)
        case .malformed(let reason): .malformed(reason: reason)
        case .stopRequested: .stopRequested
        case .wake: .tick
        }
    }

    /// Committed key bits per emulated second over the last `rateWindowNs` of wall time (the
    /// whole run until two samples exist).
    private func currentRate(link: String, emulated: Double, committed: UInt64) -> Double {
        let now = clock.now().nanoseconds
        var samples = rateSamples[link, default: []].filter { now - $0.0 <= rateWindowNs }
        samples.append((now, emulated, committed))
        rateSamples[link] = samples
        if let first = samples.first, emulated - first.1 > 0, samples.count >= 2, committed > first.2 {
            return Double(committed - first.2) / (emulated - first.1)
        }
        return emulated > 0 ? Double(committed) / emulated : 0
    }

    /// Sends what the quantum worker queued and logs what it reported.
    private func drainWorker() -> Bool {
        guard let worker else { return true }
        for output in worker.takeOutputs() {
            switch output {
            case .send(let link, let kind, let payload):
                if let t = core.send(kind, payload, on: link, at: clock.now()) { transport.send(t.frame, to: t.peer) }
            case .log(let level, let message, let metadata):
                logger.log(level: level.swiftLog, "\(message)", metadata: metadata.mapValues { .string($0) })
            case .verdict(let link, let compromised, let reason):
                if !execute(core.handle(.verdict(link, compromised: compromised, reason: reason), at: clock.now())) { return false }
            }
        }
        return true
    }

    /// Carries out the relay agent's actions; returns false once the core says stop.
    private func perform(_ actions: [RelayAgent.Action]) -> Bool {
        for action in actions {
            switch action {
            case .send(let to, let kind, let payload):
                if let t = core.send(kind, payload, toNeighbour: to, at: clock.now()) { transport.send(t.frame, to: t.peer) }
            case .reply(let bytes, let client):
                transport.reply(bytes, to: client)
            case .log(let level, let message, let metadata):
                logger.log(level: level.swiftLog, "\(message)", metadata: metadata.mapValues { .string($0) })
            }
        }
        return true
    }

    /// Every link end's quantum layer (the worker's snapshot) with its pool and state, as
    /// `qkdctl pools` shows them.
    private func poolsReport() -> [QuantumLinkReport] {
        var reports = worker?.snapshot() ?? []
        for i in reports.indices {
            let record = core.monitor.records.first { $0.link.name == reports[i].link }
            reports[i].state = record.map { core.linkState($0) } ?? .down
            pools.read(reports[i].link) { pool in
                reports[i].storedKeys = pool.availableKeys
                reports[i].storedBits = pool.availableBits
                reports[i].pendingKeys = pool.pendingKeys
                reports[i].authReserveKeys = min(pool.availableKeys, pool.configuration.authenticationReserve)
                reports[i].consumedKeysTotal = pool.counters.consumed
                reports[i].consumedBitsTotal = pool.counters.consumedBits
                reports[i].authBitsTotal = pool.counters.authenticationBits
                reports[i].droppedKeysTotal = pool.counters.dropped
                reports[i].orphansRemovedTotal = pool.counters.orphansRemoved
                reports[i].synchronised = pool.isSynchronised
            }
            reports[i].keyRateBps = currentRate(link: reports[i].link, emulated: reports[i].emulatedSeconds,
                                                committed: reports[i].generatedBitsTotal)
        }
        return reports
    }

    /// Carries out directives in order; returns false once one says stop.
    private func execute(_ directives: [NodeCore.Directive]) -> Bool {
        for directive in directives {
            switch directive {
            case .send(let frame, let peer):
                transport.send(frame, to: peer)
            case .reply(let bytes, let client):
                transport.reply(bytes, to: client)
            case .log(let level, let message, let metadata):
                logger.log(level: level.swiftLog, "\(message)", metadata: metadata.mapValues { .string($0) })
            case .ready(let up, let total):
                let line = NodeRuntime.readinessLine(node: core.configuration.node.rawValue,
                                                     pid: core.configuration.pid, linksUp: up, linksTotal: total)
                logger.notice("ready", metadata: ["links": "\(up)/\(total)"])
                announceReady(line)
            case .stop:
                return false
            case .quantum(let input):
                worker?.submit(input)
                if case .linkDown(let index) = input, let peer = core.configuration.topology.link(index)?.peer(of: core.configuration.node) {
                    if !perform(relayAgent.linkDown(to: peer, at: clock.now())) { return false }
                }
            case .relay(let kind, let payload, let from):
                let up = core.monitor.records.filter { $0.state == .up }.map(\.peer)
                if !perform(relayAgent.received(kind, payload, from: from, at: clock.now(), upNeighbours: up)) { return false }
            case .relayControl(let request, let client):
                if !perform(relayAgent.control(request, client: client, at: clock.now())) { return false }
            case .splice(let link, let peer, let endpoint, let transmittance, let client):
                if let error = transport.splice(peer, through: endpoint) {
                    if endpoint != nil { core.spliceFailed(link) }
                    transport.reply(ControlCodec.encode(ControlReply(error: "splice: \(error)")), to: client)
                } else {
                    worker?.submit(.channel(link, transmittance: transmittance))
                    transport.reply(ControlCodec.encode(ControlReply(ok: true)), to: client)
                }
            case .replyPools(let client):
                transport.reply(ControlCodec.encode(ControlReply(pools: poolsReport())), to: client)
            case .replyDigests(let client, let link, let salt):
                let digests = pools.read(link) { $0.auditDigests(salt: salt) }?
                    .map { KeyDigest(keyID: $0.id.uuidString, digest: $0.digest, pending: $0.pending) } ?? []
                transport.reply(ControlCodec.encode(ControlReply(digests: digests)), to: client)
            }
        }
        return true
    }
}

extension LogLevel {
    var swiftLog: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }
}
