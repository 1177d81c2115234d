import Foundation
import Logging
import QKDCore
import QKDLink
import QKDNode
import QKDNodeCore
import QKDTopology
import QKDTransport
import QKDWire

/// A whole network in one thread: every node's real shell (`NodeRuntime`: the core, the relay
/// agent, the pools, the quantum layer inline) over the in-memory transport, stepped in turn
/// on a manual clock. Nothing races: the same topology and seed give the same run, event for
/// event, and emulated time moves as fast as the computer can step it. Its secrets are
/// reproducible (`Secrecy.reproducible`, whatever the topology says): the same keys every run.
///
/// The loop (`run`): step every node until none has an event left at this instant, then move
/// the clock to the earliest deadline of any node (a heartbeat, a frame, a timeout). Messages
/// arrive at the instant they are sent.
public final class DeterministicNetwork {
    public struct Node {
        public let id: NodeID
        public let runtime: NodeRuntime
        public let pools: NodePools
        /// The node's ETSI GS QKD 014 service, as its KME serves it (see `kme`).
        public let keyService: NodeKeyService
        public let keyRequests: KeyRequests
        public fileprivate(set) var running = true
    }

    public let topology: Topology
    public let clock: ManualClock
    public let network = InMemoryNetwork()
    public let logs = LogCapture()
    public private(set) var nodes: [Node] = []
    /// The readiness lines the nodes printed, in order.
    public var readyLines: [String] { readyBox.lines }
    /// Node steps taken (a measure of the work a test did).
    public private(set) var steps = 0

    /// `quantum`: run every link's quantum layer (inline), with blocks of `blockBits` sifted
    /// bits (smaller than a live node's, so a test distils in seconds of emulated time), sized
    /// by the asymptotic version of the decoy bound (Lim et al.'s composable bound gives no key
    /// below a few million bits per block) unless `composable`.
    public init(topology: Topology, quantum: Bool = true, blockBits: Int = 60_000, composable: Bool = false, logLevel: Logger.Level = .info,
                start: Instant = Instant(nanoseconds: 1_000_000_000)) throws {
        // Deterministic means reproducible secrets too: the same run, the same keys.
        let topology = topology.with(secrecy: .reproducible)
        self.topology = topology
        clock = ManualClock(start)
        let ready = ReadyLines()
        for (i, node) in topology.nodes.enumerated() {
            let core = NodeCore(configuration: .init(node: node.id, topology: topology, pid: 0, incarnation: UInt64(i + 1)),
                                now: clock.now())
            let pools = try NodePools(node: node.id, topology: topology, store: nil)
            let id = node.id
            // Free-space links run on the mission's time from the network's start (blocks: passes).
            let drives = QuantumLayer.drives(of: id, topology: topology, now: start)
            let mode: NodeRuntime.QuantumMode = quantum ? .inline(engine: { [clock] link in
                QuantumLinkEngine(link: link, node: id, topologySeed: topology.seed, secrecy: .reproducible,
                                  authenticationKey: pools.authenticationKeys[link.name] ?? 0, timeScale: topology.timeScale,
                                  now: clock.now(), blockBits: blockBits, asymptoticBound: !composable, drive: drives[link.index])
            }) : .off
            let transport = network.transport(for: node.id)
            let requests = KeyRequests(waker: transport.makeWaker(), maxPerSAE: topology.kme.maxRequestsPerSAE, maxTotal: topology.kme.maxRequests)
            let runtime = NodeRuntime(core: core, transport: transport, clock: clock,
                                      logger: logs.logger(node: node.id.rawValue, level: logLevel), pools: pools, quantum: mode,
                                      keyRequests: requests) {
                ready.lines.append($0)
            }
            let service = NodeKeyService(node: node.id, topology: topology, pools: pools, requests: requests)
            nodes.append(Node(id: node.id, runtime: runtime, pools: pools, keyService: service, keyRequests: requests))
        }
        readyBox = ready
        for i in nodes.indices where !nodes[i].runtime.start() { nodes[i].running = false }
    }

    private final class ReadyLines { var lines: [String] = [] }
    private let readyBox: ReadyLines

    /// The node `id`.
    public func node(_ id: String) -> Node? { nodes.first { $0.id.rawValue == id } }

    /// Steps the network until `condition` holds (true) or `seconds` of manual time pass
    /// (false). The condition is checked whenever the network is quiet.
    @discardableResult
    public func run(seconds: Double, until condition: () -> Bool = { false }) -> Bool {
        let end = clock.now().advanced(byNanoseconds: UInt64(seconds * 1e9))
        while true {
            quiesce()
            if condition() { return true }
            let now = clock.now()
            guard now < end else { return false }
            let next = nodes.filter(\.running).map { $0.runtime.nextDeadline() }.min() ?? end
            // At least a microsecond: a deadline already due that produced nothing moves on.
            clock.set(min(end, max(next, now.advanced(byNanoseconds: 1000))))
        }
    }

    /// Steps the running nodes that have an event waiting or something due, until none has.
    private func quiesce() {
        var rounds = 0
        while true {
            var events = 0
            let now = clock.now()
            for i in nodes.indices where nodes[i].running {
                guard network.hasEvents(nodes[i].id) || nodes[i].runtime.nextDeadline() <= now else { continue }
                let (running, n) = nodes[i].runtime.step(timeoutMs: 0)
                steps += 1
                events += n
                if !running {
                    nodes[i].running = false
                    nodes[i].runtime.finish()
                }
            }
            rounds += 1
            precondition(rounds < 100_000, "the network never went quiet at \(clock.now())")
            if events == 0 { return }
        }
    }

    /// Sends a control request to `node` and steps the network until it answers (nil if it
    /// does not within `seconds` of manual time, or the answer does not decode).
    public func control(_ request: ControlRequest, to node: String, seconds: Double = 5) -> ControlReply? {
        let client = network.sendControl(ControlCodec.encode(request), to: NodeID(node))
        var reply: [UInt8]?
        run(seconds: seconds) {
            reply = network.takeReply(client)
            return reply != nil
        }
        return reply.flatMap { try? ControlCodec.decode(ControlReply.self, from: $0) }
    }

    /// Runs `call`, an async call into `node`'s KME (its key service or its routes, as
    /// another thread of a live node would), stepping the network on this thread whenever the
    /// call waits on the event loop; nil if a request the call made is not answered within
    /// `seconds` of manual time.
    public func kme<T: Sendable>(_ node: String, seconds: Double = 30, _ call: @escaping @Sendable () async -> T) -> T? {
        guard let requests = self.node(node)?.keyRequests else { return nil }
        let result = PendingCall<T>()
        // On a thread of its own, not the cooperative pool: the test's thread (itself one of
        // the pool's, on a 2-core machine one of two) blocks while it steps the network.
        Task(executorPreference: CallExecutor.shared) { result.set(await call()) }
        while true {
            // Handing the call to another task and on to the event loop's queue takes
            // microseconds of wall time; 10 s only bounds a call that hangs without a request.
            guard eventually(within: 10, { result.value != nil || requests.outstanding > 0 }) else { return nil }
            if let value = result.value { return value }
            guard run(seconds: seconds, until: { requests.outstanding == 0 }) else { return nil }
        }
    }

    /// Starts `call` (a KME request) without stepping the network, so that several can be in
    /// flight at once; `run` then steps the network while they are answered.
    public func start<T: Sendable>(_ call: @escaping @Sendable () async -> T) -> PendingCall<T> {
        let result = PendingCall<T>()
        Task(executorPreference: CallExecutor.shared) { result.set(await call()) }
        return result
    }

    /// A node's status, read from its runtime between steps (what `qkdctl status` shows).
    public func status(_ node: String) -> NodeStatusReport? { self.node(node)?.runtime.statusReport() }

    /// A link's state at one end.
    public func linkState(_ node: String, _ link: String) -> LinkState? { status(node)?.links.first { $0.id == link }?.state }

    /// (key ID, digest) of every key a node holds for `link`, digests under `salt`.
    public func digests(_ node: String, link: String, salt: UInt64 = 1) -> [KeyDigest] {
        control(ControlRequest.keyDigests(link: link, salt: salt), to: node)?.digests ?? []
    }

    /// Whether every link is up at both ends and both pools agree.
    public var allLinksAgreed: Bool {
        topology.links.allSatisfy { link in
            [link.a, link.b].allSatisfy { end in node(end.rawValue)?.pools.level(link.name)?.synchronised ?? false }
        }
    }

    /// Stops every node (as SIGTERM would) and steps them until they have left their loops.
    public func stop() {
        for node in nodes where node.running { network.requestStop(node.id) }
        quiesce()
    }
}

/// The value an async call returned, set on its task and read on the test's thread.
/// `@unchecked Sendable`: `stored` is read and written only under `lock`.
/// A call's answer, once it is there (`DeterministicNetwork.start`).
public final class PendingCall<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?

    public var value: T? { lock.withLock { stored } }
    func set(_ value: T) { lock.withLock { stored = value } }
}

/// Runs the jobs of the tasks that prefer it on one serial dispatch queue (an overcommit
/// thread outside Swift's cooperative pool, so that tests blocking the pool cannot starve it).
private final class CallExecutor: TaskExecutor {
    static let shared = CallExecutor()
    private let queue = DispatchQueue(label: "qkdnet.testkit.kme-calls")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
