import ArgumentParser
import CQKDSystem
import Foundation
import Logging
import QKDCore
import QKDAPI
import QKDNode
import QKDNodeCore
import QKDStore
import Synchronization
import QKDTopology
import QKDTransport

/// One city node of a QKDNet network: one OS process per node.
@main
struct QKDNodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qkd-node",
        abstract: "Run one trusted node of a QKDNet network.",
        discussion: """
            Binds the node's peer and control endpoints, connects to every neighbour named by \
            the topology, keeps a heartbeat on each link, prints one readiness line \
            (QKDNET READY ...) when all its links are connected, logs to RUN_DIR/logs/ID.log, \
            and shuts down gracefully on SIGTERM. Key pools live in RUN_DIR/store/ID.sqlite. \
            Exit codes: 0 stopped, 1 runtime failure, 2 bad configuration, 3 key store refused \
            (damaged, unreadable or not this node's: the node never serves keys from it).
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

    @Flag(name: .customLong("die-with-parent"), help: "Exit when the process that started this one dies.")
    var dieWithParent = false

    func run() throws {
        if dieWithParent { _ = qkd_set_parent_death_signal(SIGTERM) }
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
        let root = URL(fileURLWithPath: runDir).standardizedFileURL.path
        let layout = RunLayout(root: root)
        if let problem = layout.validateEndpoints(for: topology) { fail(2, problem) }
        do {
            for dir in [layout.logsDirectory, layout.socketsDirectory] {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            }
        } catch {
            fail(1, "cannot create run directory '\(root)': \(error.localizedDescription)")
        }

        let sink: LogSink
        do { sink = try LogSink(path: layout.logPath(me.id)) } catch { fail(1, error.message) }
        var logger = Logger(label: "qkd-node") { FileLogHandler(label: $0, sink: sink) }
        logger.logLevel = level
        logger[metadataKey: "node"] = "\(me.id)"

        // Before pinning: loading the pools opens sealed keys on every core.
        let pools: NodePools
        do {
            let opening = Date()
            let store = try KeyStore.open(directory: layout.storeDirectory, node: me.id.rawValue, durability: storeDurability)
            pools = try NodePools(node: me.id, topology: topology, store: store) { [logger] error in
                logger.critical("key store write failed: stopping", metadata: ["error": "\(error)"])
                fail(1, "\(error)")
            }
            logger.notice("key store opened", metadata: [
                "path": "\(store.path)", "starts": "\(store.starts)", "keys": "\(pools.heldKeys)", "durability": "\(storeDurability.rawValue)",
                "load_ms": "\(Int(Date().timeIntervalSince(opening) * 1000))", "read": "\(pools.readDuration)",
            ])
        } catch {
            logger.critical("key store refused", metadata: ["error": "\(error)"])
            fail(3, "node \(me.id): \(error)")
        }

        if ioCPU != "none" {
            guard let cpu = Int32(ioCPU), cpu >= 0 else { fail(2, "--io-cpu: expected a CPU number or 'none', got '\(ioCPU)'") }
            // Threads created from here on (libzmq's I/O thread among them) inherit the pin.
            let rc = qkd_pin_thread_to_cpu(cpu)
            if rc != 0 { logger.warning("cannot pin to CPU", metadata: ["cpu": "\(cpu)", "errno": "\(rc)"]) }
        }
        guard qkd_install_stop_handlers() == 0 else { fail(1, "cannot install signal handlers") }
        let pid = getpid()
        let incarnation = UInt64.random(in: 1...UInt64.max)
        logger.notice("starting", metadata: [
            "pid": "\(pid)", "topology": "\(topology.name)", "seed": "\(topology.seed)",
            "incarnation": "\(incarnation)", "libzmq": "\(zmqVersion())", "io_cpu": "\(ioCPU)", "time_scale": "\(topology.timeScale)",
        ])

        let neighbours = topology.links(of: me.id).compactMap { link -> (id: NodeID, endpoint: String)? in
            guard let peer = link.peer(of: me.id), let peerNode = topology.node(peer) else { return nil }
            return (peer, layout.peerEndpoint(peerNode))
        }
        let transport: ZMQNodeTransport
        do {
            transport = try ZMQNodeTransport(
                node: me.id, peerEndpoint: layout.peerEndpoint(me),
                controlEndpoint: layout.controlEndpoint(me), neighbours: neighbours,
                stopFD: qkd_stop_fd())
        } catch {
            logger.error("cannot open transport", metadata: ["error": "\(error)"])
            fail(1, "node \(me.id): cannot open transport: \(error)")
        }

        // The ETSI GS QKD 014 KME, when the launcher made this node a certificate.
        var kmeURL: String?
        let keyRequests = KeyRequests(waker: transport.makeWaker())
        if FileManager.default.fileExists(atPath: layout.kmeCertificatePath(me.id)) {
            let paths = KMEServer.Paths(ca: layout.caCertificatePath, certificate: layout.kmeCertificatePath(me.id),
                                        key: layout.kmeKeyPath(me.id))
            let service = NodeKeyService(node: me.id, topology: topology, pools: pools, requests: keyRequests)
            let bound = Mutex<Int?>(nil)
            let started = DispatchSemaphore(value: 0)
            Task.detached { [logger] in
                do {
                    try await KMEServer.run(paths: paths, service: service) { port in
                        bound.withLock { $0 = port }
                        started.signal()
                    }
                } catch {
                    logger.error("KME stopped", metadata: ["error": "\(error)"])
                    started.signal()
                }
            }
            guard started.wait(timeout: .now() + 20) == .success, let port = bound.withLock({ $0 }), port > 0 else {
                fail(1, "node \(me.id): the KME (HTTPS) did not start; see \(layout.logPath(me.id))")
            }
            kmeURL = "https://127.0.0.1:\(port)"
            logger.notice("KME serving", metadata: ["url": "\(kmeURL!)"])
        }

        let clock = SystemClock()
        let core = NodeCore(
            configuration: .init(node: me.id, topology: topology, pid: pid, incarnation: incarnation, kmeURL: kmeURL),
            now: clock.now())
        let runtime = NodeRuntime(core: core, transport: transport, clock: clock, logger: logger, pools: pools,
                                  quantum: quantum == "on" ? .worker : .off, keyRequests: keyRequests) { line in
            writeLine(line, to: 1)
        }
        runtime.run()
        do {
            try pools.close()
        } catch {
            logger.error("key store did not close cleanly", metadata: ["error": "\(error)"])
        }
    }
}

func writeLine(_ line: String, to fd: Int32) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

func fail(_ code: Int32, _ message: String) -> Never {
    writeLine("qkd-node: error: \(message)", to: 2)
    exit(code)
}
