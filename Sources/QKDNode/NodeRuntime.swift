import Logging
import QKDCore
import QKDHybrid
import QKDKeyPool
import QKDLink
import QKDNodeCore
import QKDStore
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
    /// Reads a link's bootstrap file anew (`rebootstrap`); nil: the node has none to read.
    private let readBootstrap: (@Sendable (TopologyLink) throws(StoreError) -> LinkBootstrap)?
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
                quantum: QuantumMode = .worker, keyRequests: KeyRequests? = nil,
                readBootstrap: (@Sendable (TopologyLink) throws(StoreError) -> LinkBootstrap)? = nil,
                kem: KMEKeys? = nil,
                announceReady: @escaping (String) -> Void) {
        self.pools = pools
        self.keyRequests = keyRequests
        self.readBootstrap = readBootstrap
        let node = core.configuration.node, topology = core.configuration.topology
        // A reproducible run's KME keys follow from the seed; a secret run's are read by qkd-node.
        let kem = kem ?? (topology.secrecy == .reproducible ? try? KMEKeys.derived(SeedTree(root: topology.seed), node: node.rawValue) : nil)
        relayAgent = RelayAgent(node: node, topology: topology, pools: pools, kem: kem)
        switch quantum {
        case .off: worker = nil
        case .worker: worker = QuantumWorker(node: node, topology: topology, clock: clock, waker: transport.makeWaker(), pools: pools)
        case .inline(let engine):
            worker = InlineQuantumLayer(layer: QuantumLayer(node: node, topology: topology, epoch: pools.starts, now: clock.now(),
                                                                  authenticationKeys: pools.authenticationKeys, engine: engine),
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

    /// Starts the quantum layer and handles the first tick.
    public func start() -> Bool {
        worker?.start()
        carryOut(core.tick(at: clock.now()))
        return true
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
        let woke = clock.now()
        var slowest: (index: Int, ns: UInt64) = (0, 0)
        for (index, event) in events.enumerated() where running {
            let began = clock.now()
            defer {
                let took = clock.now().nanoseconds(since: began)
                if took > slowest.ns { slowest = (index, took) }
            }
            switch event {
            case .wake:
                drainWorker()
                for request in keyRequests?.takeAll() ?? [] { perform(relayAgent.application(request, at: clock.now())) }
            case .peer(let from, let frame):
                carryOut(core.receive(frame: frame, from: from, at: clock.now()))
            case .control(let client, let request):
                core.relays = relayCounters()
                running = carryOut(core.control(client: client, request: request, at: clock.now()))
            case .malformed(let reason):
                log(core.malformed(reason: reason))
            case .refused(let reason):
                log(core.refused(reason: reason))
            case .stopRequested:
                carryOut(core.stop(at: clock.now()))
                running = false
            }
        }
        guard running else { return (false, events.count) }
        core.listened(at: listening)
        worker?.poll(at: clock.now())
        drainWorker()
        carryOut(core.tick(at: clock.now()))
        perform(relayAgent.tick(at: clock.now(), links: core.monitor.records.map {
            ($0.link, $0.state == .up, core.compromised.contains($0.link.index))
        }))
        noteStall(waitedFrom: listening, timeoutMs: timeout, woke: woke, events: events, slowest: slowest)
        return (true, events.count)
    }

    /// A step longer than this is logged (`noteStall`): heartbeats every 200 ms and a 1 s
    /// liveness timeout leave the loop that much slack before its neighbours think it gone.
    static let stallWarningNs: UInt64 = 300_000_000

    /// Logs a step whose wait overshot its timeout (the thread did not get the CPU) or whose
    /// handling took long (what was slowest), by more than `stallWarningNs`: the cause when a
    /// neighbour took a link down for silence while this node ran.
    private func noteStall(waitedFrom start: Instant, timeoutMs: Int, woke: Instant, events: [TransportEvent], slowest: (index: Int, ns: UInt64)) {
        let end = clock.now()
        let late = woke.nanoseconds(since: start.advanced(byNanoseconds: UInt64(max(0, timeoutMs)) * 1_000_000))
        let handling = end.nanoseconds(since: woke)
        guard late > Self.stallWarningNs || handling > Self.stallWarningNs else { return }
        logger.warning("event loop stalled", metadata: [
            "wait_overshoot_ms": "\(late / 1_000_000)", "handling_ms": "\(handling / 1_000_000)", "events": "\(events.count)",
            "slowest": "\(events.indices.contains(slowest.index) ? events[slowest.index].name : "")", "slowest_ms": "\(slowest.ns / 1_000_000)",
        ])
    }

    /// The relay's counters with the KME's refusals at its bounds.
    private func relayCounters() -> RelayCounters {
        var counters = relayAgent.counters
        counters.refusedBusy = UInt64(keyRequests?.refused ?? 0)
        return counters
    }

    /// The node's status as `qkdctl status` reports it. Only from the loop's own thread (the
    /// deterministic network reads it between steps instead of asking over the control path).
    public func statusReport() -> NodeStatusReport {
        core.relays = relayCounters()
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
    private func drainWorker() {
        guard let worker else { return }
        for output in worker.takeOutputs() {
            switch output {
            case .send(let link, let kind, let payload):
                if let t = core.send(kind, payload, on: link, at: clock.now()) { transport.send(t.frame, to: t.peer) }
            case .log(let level, let message, let metadata):
                log(NodeCore.LogLine(level, message, metadata))
            case .verdict(let link, let compromised, let reason):
                log(core.verdict(link, compromised: compromised, reason: reason))
            }
        }
    }

    /// Carries out the relay agent's actions.
    private func perform(_ actions: [RelayAgent.Action]) {
        for action in actions {
            switch action {
            case .send(let to, let kind, let payload):
                if let t = core.send(kind, payload, toNeighbour: to, at: clock.now()) { transport.send(t.frame, to: t.peer) }
            case .reply(let bytes, let client):
                transport.reply(bytes, to: client)
            case .log(let level, let message, let metadata):
                log(NodeCore.LogLine(level, message, metadata))
            }
        }
    }

    private func log(_ line: NodeCore.LogLine) {
        logger.log(level: line.level.swiftLog, "\(line.message)", metadata: line.metadata.mapValues { .string($0) })
    }

    /// Sends, answers, logs, and hands the quantum layer its inputs (a link going down also
    /// goes to the relay agent, which fails the relays waiting on it).
    private func carryOut(_ effects: NodeCore.Effects) {
        for t in effects.sends { transport.send(t.frame, to: t.peer) }
        for a in effects.answers { transport.reply(a.bytes, to: a.client) }
        for line in effects.logs { log(line) }
        for input in effects.quantum {
            worker?.submit(input)
            if case .linkDown(let index) = input, let peer = core.configuration.topology.link(index)?.peer(of: core.configuration.node) {
                perform(relayAgent.linkDown(to: peer, at: clock.now()))
            }
        }
    }

    private func carryOut(_ outcome: NodeCore.FrameOutcome) {
        carryOut(outcome.effects)
        guard let message = outcome.relay else { return }
        let up = core.monitor.records.filter { $0.state == .up }.map(\.peer)
        perform(relayAgent.received(message.kind, message.payload, from: message.from, at: clock.now(), upNeighbours: up))
    }

    private func carryOut(_ outcome: NodeCore.TickOutcome) {
        carryOut(outcome.effects)
        guard let ready = outcome.ready else { return }
        let line = NodeRuntime.readinessLine(node: core.configuration.node.rawValue, pid: core.configuration.pid,
                                             linksUp: ready.linksUp, linksTotal: ready.linksTotal)
        logger.notice("ready", metadata: ["links": "\(ready.linksUp)/\(ready.linksTotal)"])
        announceReady(line)
    }

    /// Carries out a control request's outcome; false when it stops the node.
    private func carryOut(_ outcome: NodeCore.ControlOutcome) -> Bool {
        carryOut(outcome.effects)
        let client = outcome.client
        switch outcome.action {
        case .none:
            break
        case .replyPools:
            transport.reply(ControlCodec.encode(ControlReply(pools: poolsReport())), to: client)
        case .replyDigests(let link, let salt):
            let digests = pools.read(link) { $0.auditDigests(salt: salt) }?
                .map { KeyDigest(keyID: $0.id.uuidString, digest: $0.digest, pending: $0.pending) } ?? []
            transport.reply(ControlCodec.encode(ControlReply(digests: digests)), to: client)
        case .relay(let request):
            perform(relayAgent.control(request, client: client, at: clock.now()))
        case .splice(let link, let peer, let via, let transmittance):
            if let error = transport.splice(peer, through: via) {
                if via != nil { core.spliceFailed(link) }
                transport.reply(ControlCodec.encode(ControlReply(error: "splice: \(error)")), to: client)
            } else {
                worker?.submit(.channel(link, transmittance: transmittance))
                transport.reply(ControlCodec.encode(ControlReply(ok: true)), to: client)
            }
        case .rebootstrap(let link):
            transport.reply(ControlCodec.encode(rebootstrap(link)), to: client)
        }
        return !outcome.stop
    }

    /// Provisions `link` afresh from its bootstrap file (`qkdctl node reset` of the peer): the
    /// pool holds the file's pre-shared keys only, durably, before the quantum layer starts its
    /// agreement over with the file's transcript-hash key; relays through the link are void.
    private func rebootstrap(_ link: TopologyLink) -> ControlReply {
        guard let readBootstrap else { return ControlReply(error: "rebootstrap: this node reads no bootstrap files") }
        let bootstrap: LinkBootstrap
        do {
            bootstrap = try readBootstrap(link)
        } catch {
            return ControlReply(error: "rebootstrap: \(error)")
        }
        if let refusal = pools.rebootstrap(link.name, with: bootstrap) { return ControlReply(error: "rebootstrap: \(refusal)") }
        worker?.submit(.rebootstrap(link.index, authenticationKey: bootstrap.authenticationKey))
        if let peer = link.peer(of: core.configuration.node) { perform(relayAgent.linkDown(to: peer, at: clock.now())) }
        logger.notice("link re-provisioned from its bootstrap file", metadata: ["link.id": "\(link.name)", "keys": "\(bootstrap.keys.count)"])
        return ControlReply(ok: true)
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

extension TransportEvent {
    /// What the event is, for a stall report (no content).
    var name: String {
        switch self {
        case .peer(let from, _): "frame from \(from)"
        case .control: "control request"
        case .malformed: "malformed message"
        case .refused: "refused connection"
        case .stopRequested: "stop"
        case .wake: "worker and key requests"
        }
    }
}
