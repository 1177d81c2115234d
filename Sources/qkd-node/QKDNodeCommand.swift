import ArgumentParser
import CQKDSystem
import Foundation
import Logging
import QKDCore
import QKDHybrid
import QKDKeyPool
import QKDAPI
import QKDNode
import QKDNodeCore
import QKDStore
import Synchronization
import QKDTopology
import QKDTransport
import ServiceLifecycle

/// One city node of a QKDNet network: one OS process per node.
@main
struct QKDNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qkd-node",
        abstract: "Run one trusted node of a QKDNet network.",
        discussion: """
            Binds the node's peer and control endpoints, connects to every neighbour named by \
            the topology, keeps a heartbeat on each link, prints one readiness line \
            (QKDNET READY ...) when all its links are connected, logs to RUN_DIR/logs/ID.log, \
            and shuts down gracefully on SIGTERM or SIGINT (event loop stopped, quantum worker \
            joined, KME drained, key store closed). Key pools live in RUN_DIR/store/ID.sqlite. \
            Exit codes: 0 stopped, 1 runtime failure, 2 bad configuration, 3 key store refused \
            (damaged, unreadable or not this node's: the node never serves keys from it), 4 a \
            key store write failed (a full disk: the node stops at once rather than serve keys \
            its store does not hold; what the store held stays intact).
            """)

    @Option(help: "Topology file (YAML).")
    var topology: String

    @Option(help: "This node's id, as the topology names it.")
    var node: String

    @Option(name: .customLong("run-dir"), help: "The network's run directory.")
    var runDir: String

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    @Option(name: .customLong("io-cpu"), help: "Pin the event loop and libzmq's I/O thread to this CPU ('none': no pinning).")
    var ioCPU: String = "none"

    @Option(help: "Run the links' quantum layer: on, or off (classical spine only).")
    var quantum: String = "on"

    @Option(help: "What a key pool write survives before the node acts on it: process (kill -9; no fsync per commit) or power (power loss too; an fsync per commit).")
    var durability: String = "process"

    @Option(name: .customLong("time-scale"), help: "Emulated seconds per wall second, instead of the topology's time_scale.")
    var timeScale: Double?

    @Option(name: .customLong("mission-origin"), help: "A satellite network's emulated start: the CLOCK_MONOTONIC nanosecond at which its mission begins (qkdctl up gives every node the same).")
    var missionOrigin: UInt64?

    @Flag(help: "Draw secret randomness from the seed too (secrecy: reproducible): the same keys every run, computable from the topology. Experiments and tests only.")
    var reproducible = false

    @Flag(name: .customLong("die-with-parent"), help: "Exit when the process that started this one dies.")
    var dieWithParent = false

    func run() async throws {
        if dieWithParent { _ = qkd_set_parent_death_signal(SIGTERM) }
        let topology = loadTopology()
        guard let me = topology.node(NodeID(node)) else {
            fail(2, "\(self.topology): node '\(node)' is not in the topology")
        }
        guard quantum == "on" || quantum == "off" else { fail(2, "--quantum: expected on or off, got '\(quantum)'") }
        guard let storeDurability = KeyStore.Durability(rawValue: durability) else {
            fail(2, "--durability: expected process or power, got '\(durability)'")
        }
        guard let level = Logger.Level(rawValue: logLevel) else {
            fail(2, "--log-level: unknown level '\(logLevel)'")
        }
        let layout = RunLayout(root: URL(fileURLWithPath: runDir).standardizedFileURL.path)
        if let problem = layout.validateEndpoints(for: topology) { fail(2, problem) }
        let logger = openLog(layout, me.id, level: level)
        // Before pinning: loading the pools opens sealed keys on every core.
        let pools = openPools(layout, me.id, topology, durability: storeDurability, logger: logger)
        if ioCPU != "none" {
            guard let cpu = Int32(ioCPU), cpu >= 0 else { fail(2, "--io-cpu: expected a CPU number or 'none', got '\(ioCPU)'") }
            // Threads created from here on (libzmq's I/O thread among them) inherit the pin.
            let rc = qkd_pin_thread_to_cpu(cpu)
            if rc != 0 { logger.warning("cannot pin to CPU", metadata: ["cpu": "\(cpu)", "errno": "\(rc)"]) }
        }
        // Frames of a megabyte pass from the worker to the loop: reuse the heap, do not map
        // and unmap each one (measured on the 16-city mesh: see docs/decisions.md).
        if qkd_keep_heap() != 0 { logger.warning("cannot tune the allocator: megabyte frames are mapped one by one") }
        // SIGTERM and SIGINT go to the service group, which asks the event loop to stop through
        // the stop pipe that its poll watches.
        guard qkd_create_stop_pipe() == 0 else { fail(1, "cannot create the stop pipe") }
        let pid = getpid()
        let incarnation = UInt64.random(in: 1...UInt64.max)
        logger.notice("starting", metadata: [
            "pid": "\(pid)", "topology": "\(topology.name)", "seed": "\(topology.seed)", "secrecy": "\(topology.secrecy)",
            "incarnation": "\(incarnation)", "libzmq": "\(zmqVersion())", "io_cpu": "\(ioCPU)", "time_scale": "\(topology.timeScale)",
        ])
        if let mission = topology.mission, let timeline = topology.missionTimeline {
            logger.notice("mission", metadata: [
                "start_utc": "\(Date(timeIntervalSince1970: mission.start).ISO8601Format())", "hours": "\(mission.hours)",
                "passes": "\(timeline.passes.count)", "wall_s": "\(Int(timeline.wallSeconds.rounded()))",
                "gap_wall_s": "\(mission.gapWallSeconds)",
            ])
        }
        let transport = openTransport(layout, me, topology, logger: logger)
        let keyRequests = KeyRequests(waker: transport.makeWaker(), maxPerSAE: topology.kme.maxRequestsPerSAE, maxTotal: topology.kme.maxRequests)
        let kme = kmeService(layout, me.id, topology, pools: pools, requests: keyRequests)

        // The KME's ML-KEM-768 keys for hybrid keys: `qkdctl up` writes them for a secret run (a
        // reproducible run derives them from the seed, in NodeRuntime). Present but unreadable:
        // the node stops, naming the file; absent: no hybrid keys, said once.
        var kemKeys: KMEKeys?
        if topology.secrecy == .secret {
            if FileManager.default.fileExists(atPath: KMEKeys.seedPath(layout.kemDirectory, me.id.rawValue)) {
                do {
                    kemKeys = try KMEKeys.load(directory: layout.kemDirectory, node: me.id.rawValue, nodes: topology.nodes.map(\.id.rawValue))
                } catch {
                    logger.critical("cannot read the KME's ML-KEM keys", metadata: ["error": "\(error)"])
                    writeLine("qkd-node \(me.id): \(error)", to: 2)
                    throw ExitCode(3)
                }
            } else {
                logger.notice("no ML-KEM keys under the run's PKI: this KME makes no hybrid keys", metadata: ["directory": "\(layout.kemDirectory)"])
            }
        }
        let kemLoaded = kemKeys
        let handOff = HandOff((transport: transport, keyRequests: keyRequests, pools: pools, topology: topology, logger: logger))
        let quantum = self.quantum
        let loop = EventLoopService(logger: logger, kmePort: kme?.port, pinTo: Int32(ioCPU)) { kmeURL in
            let (transport, keyRequests, pools, topology, logger) = handOff.value
            if let kmeURL { logger.notice("KME serving", metadata: ["url": "\(kmeURL)"]) }
            let clock = SystemClock()
            let core = NodeCore(
                configuration: .init(node: me.id, topology: topology, pid: pid, incarnation: incarnation,
                                     firstSequence: UInt64(Date().timeIntervalSince1970 * 1e9), kmeURL: kmeURL),
                now: clock.now())
            let readBootstrap: @Sendable (TopologyLink) throws(StoreError) -> LinkBootstrap = { link throws(StoreError) in
                try NodePools.bootstrap(node: me.id, link: link, topology: topology, layout: layout)
            }
            return NodeRuntime(core: core, transport: transport, clock: clock, logger: logger, pools: pools,
                               quantum: quantum == "on" ? .worker : .off, keyRequests: keyRequests, readBootstrap: readBootstrap,
                               kem: kemLoaded) { line in
                writeLine(line, to: 1)
            }
        }
        await serve(kme.map { [$0.service] } ?? [], then: loop, node: me.id, logger: logger)
        do {
            try pools.close()
        } catch {
            logger.error("key store did not close cleanly", metadata: ["error": "\(error)"])
        }
        if let failure = loop.failure.withLock({ $0 }) { fail(1, "node \(me.id): \(failure)") }
        logger.notice("exiting")
    }

    func loadTopology() -> Topology {
        var topology: Topology
        do {
            topology = try TopologyParser.load(path: self.topology)
        } catch {
            fail(2, "\(error)")
        }
        if let timeScale {
            if let problem = Topology.timeScaleProblem(timeScale) { fail(2, "--time-scale: \(problem)") }
            topology = topology.with(timeScale: timeScale)
        }
        if reproducible { topology = topology.with(secrecy: .reproducible) }
        if let missionOrigin {
            guard topology.mission != nil else { fail(2, "--mission-origin: \(self.topology) has no free-space link, so no mission") }
            topology = topology.with(missionOrigin: Instant(nanoseconds: missionOrigin))
        }
        return topology
    }

    /// The node's log file, RUN_DIR/logs/ID.log (the run directory's folders made if missing).
    func openLog(_ layout: RunLayout, _ node: NodeID, level: Logger.Level) -> Logger {
        do {
            for dir in [layout.logsDirectory, layout.socketsDirectory] {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            }
        } catch {
            fail(1, "cannot create run directory '\(layout.root)': \(error.localizedDescription)")
        }
        let sink: LogSink
        do { sink = try LogSink(path: layout.logPath(node)) } catch { fail(1, error.message) }
        var logger = Logger(label: "qkd-node") { FileLogHandler(label: $0, sink: sink) }
        logger.logLevel = level
        logger[metadataKey: "node"] = "\(node)"
        return logger
    }

    /// The node's pools from its store; exit 3 if the store is refused (damaged, foreign), exit
    /// 4 when a later write fails: every change reaches the store before memory and the wire
    /// (`NodePools`), so the failed change is neither held nor announced, and stopping at once
    /// keeps the node from answering for keys its store does not have.
    func openPools(_ layout: RunLayout, _ node: NodeID, _ topology: Topology, durability: KeyStore.Durability, logger: Logger) -> NodePools {
        do {
            let opening = Date()
            let store = try KeyStore.open(directory: layout.storeDirectory, node: node.rawValue, durability: durability)
            let bootstraps = try NodePools.bootstraps(node: node, topology: topology, layout: layout)
            let pools = try NodePools(node: node, topology: topology, store: store, bootstraps: bootstraps) { [logger] error in
                logger.critical("key store write failed: stopping", metadata: ["error": "\(error)"])
                fail(4, "node \(node): key store write failed, stopping: \(error)")
            }
            logger.notice("key store opened", metadata: [
                "path": "\(store.path)", "starts": "\(store.starts)", "keys": "\(pools.heldKeys)", "durability": "\(durability.rawValue)",
                "load_ms": "\(Int(Date().timeIntervalSince(opening) * 1000))", "read": "\(pools.readDuration)",
            ])
            return pools
        } catch {
            logger.critical("key store refused", metadata: ["error": "\(error)"])
            fail(3, "node \(node): \(error)")
        }
    }

    func openTransport(_ layout: RunLayout, _ me: TopologyNode, _ topology: Topology, logger: Logger) -> ZMQNodeTransport {
        let neighbours = topology.links(of: me.id).compactMap { link -> (id: NodeID, endpoint: String)? in
            guard let peer = link.peer(of: me.id), let peerNode = topology.node(peer) else { return nil }
            return (peer, layout.peerEndpoint(peerNode))
        }
        let keys: ChannelKeys
        do {
            keys = try layout.channelKeys(me.id, topology: topology)
        } catch {
            logger.error("cannot read CURVE keys", metadata: ["error": "\(error)"])
            fail(2, "node \(me.id): \(error)")
        }
        do {
            return try ZMQNodeTransport(node: me.id, peerEndpoint: layout.peerEndpoint(me), controlEndpoint: layout.controlEndpoint(me),
                                        neighbours: neighbours, keys: keys, stopFD: qkd_stop_fd())
        } catch {
            logger.error("cannot open transport", metadata: ["error": "\(error)"])
            fail(1, "node \(me.id): cannot open transport: \(error)")
        }
    }

    /// The ETSI GS QKD 014 KME, when the launcher made this node a certificate, and the port it
    /// will have bound once the group runs it (status reports its URL).
    func kmeService(_ layout: RunLayout, _ node: NodeID, _ topology: Topology, pools: NodePools, requests: KeyRequests)
        -> (service: ServiceGroupConfiguration.ServiceConfiguration, port: AsyncStream<Int>)?
    {
        guard FileManager.default.fileExists(atPath: layout.kmeCertificatePath(node)) else { return nil }
        let paths = KMEServer.Paths(ca: layout.caCertificatePath, certificate: layout.kmeCertificatePath(node), key: layout.kmeKeyPath(node))
        let keys = NodeKeyService(node: node, topology: topology, pools: pools, requests: requests)
        let (port, bound) = AsyncStream.makeStream(of: Int.self)
        do {
            let kme = try KMEServer.service(paths: paths, service: keys) { number in
                bound.yield(number)
                bound.finish()
            }
            return (.init(service: kme, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
                    port)
        } catch {
            fail(1, "node \(node): the KME (HTTPS) cannot start: \(error)")
        }
    }

    /// Runs `services`, then `loop`, as one group until it shuts down. The loop is last: a
    /// graceful shutdown stops it first (its goodbyes, the worker joined, waiting key requests
    /// answered), then the KME drains. Any of them ending shuts the others down.
    func serve(_ services: [ServiceGroupConfiguration.ServiceConfiguration], then loop: EventLoopService, node: NodeID, logger: Logger) async {
        let all = services + [.init(service: loop, successTerminationBehavior: .gracefullyShutdownGroup,
                                    failureTerminationBehavior: .gracefullyShutdownGroup)]
        let group = ServiceGroup(configuration: .init(services: all, gracefulShutdownSignals: [.sigterm, .sigint],
                                                      cancellationSignals: [], logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("service group failed", metadata: ["error": "\(error)"])
            fail(1, "node \(node): \(error)")
        }
    }
}

/// Hands values made on the main thread to the event loop's thread, which alone uses them from
/// then on. `@unchecked Sendable`: the transport (libzmq sockets) is touched only by the thread
/// that runs the loop, after `Thread.start` (a happens-before edge); the pools and key requests
/// are thread-safe themselves.
struct HandOff<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

func writeLine(_ line: String, to fd: Int32) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

func fail(_ code: Int32, _ message: String) -> Never {
    writeLine("qkd-node: error: \(message)", to: 2)
    exit(code)
}
