import Foundation
import QKDCore
import QKDHybrid
import QKDTopology
import QKDTransport
import QKDWire

/// A network of node processes sharing one run directory: start it, find it again, ask its
/// nodes how they are, stop it.
public struct Network: Sendable {
    public static let readinessMarker = "QKDNET READY"

    /// Where nodes' event loops and libzmq I/O threads run.
    public enum IOCPU: Sendable, Equatable {
        /// CPU 0 in a network of at most `pinnedNetworkLimit` nodes, else not pinned.
        case auto
        case cpu(Int)
        case none

        /// Parses `auto`, `none` or a CPU number.
        public init?(_ text: String) {
            switch text {
            case "auto": self = .auto
            case "none": self = .none
            default:
                guard let n = Int(text), n >= 0 else { return nil }
                self = .cpu(n)
            }
        }

        /// The CPU for a network of `nodes` nodes (nil: not pinned).
        public func resolved(nodes: Int) -> Int? {
            switch self {
            case .auto: nodes <= Network.pinnedNetworkLimit ? 0 : nil
            case .cpu(let n): n
            case .none: nil
            }
        }
    }

    /// In a small network every node's event loop and libzmq I/O thread share CPU 0 by default:
    /// on a small machine, cross-core thread wake-ups dominate classical latency (measured: p50
    /// round trip about 55 µs pinned, 100-130 µs unpinned, on 2 vCPUs). In a large one the
    /// classical traffic of all nodes (heartbeats, routing, every Cascade round trip) no longer
    /// fits one CPU: the 16-city mesh (105 nodes) pinned saw links drop for 1 s without a
    /// heartbeat while every link reconciled its first block, and none unpinned (each node pinned
    /// to one of the two CPUs by its place in the topology was worse still). Compute-heavy
    /// worker threads are never pinned. See docs/architecture.md.
    public static let pinnedNetworkLimit = 16

    public let layout: RunLayout
    public let topology: Topology
    public let manifest: NetworkManifest
    /// The CURVE sessions to the nodes' control sockets, kept across queries (shared by the
    /// copies of this value).
    public let control = ControlSession()

    public init(layout: RunLayout, topology: Topology, manifest: NetworkManifest) {
        self.layout = layout
        self.topology = topology
        self.manifest = manifest
    }

    // MARK: Finding a network

    /// Opens the network whose run directory is `runDir`.
    public static func open(runDir: String) throws(LaunchError) -> Network {
        let layout = RunLayout(root: absolute(runDir))
        let manifest = try NetworkManifest.load(path: layout.networkPath)
        do {
            var topology = try TopologyParser.load(path: layout.topologyPath)
            // Started with --reproducible: the nodes run it so, whatever the file says.
            if manifest.nodeArguments.contains("--reproducible") { topology = topology.with(secrecy: .reproducible) }
            return Network(layout: layout, topology: topology, manifest: manifest)
        } catch {
            throw LaunchError(.invalidTopology, "\(error)")
        }
    }

    /// The network in `runDir` if given; otherwise the one network under `base` (default
    /// `.run/`) with live nodes, or, if none is live, the only one there is.
    public static func discover(runDir: String?, base: String = ".run") throws(LaunchError) -> Network {
        if let runDir { return try open(runDir: runDir) }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        let candidates = entries.sorted().map { "\(base)/\($0)" }
            .filter { FileManager.default.fileExists(atPath: "\($0)/network.json") }
        guard !candidates.isEmpty else {
            throw LaunchError(.noNetwork, "no network found under '\(absolute(base))': start one with 'make up' or pass --run-dir")
        }
        var live: [Network] = []
        for dir in candidates {
            if let network = try? open(runDir: dir), !network.livePIDs().isEmpty { live.append(network) }
        }
        if live.count == 1 { return live[0] }
        if live.count > 1 {
            throw LaunchError(.noNetwork, "several networks are running (\(live.map(\.layout.root).joined(separator: ", "))): pass --run-dir")
        }
        if candidates.count == 1 { return try open(runDir: candidates[0]) }
        throw LaunchError(.noNetwork, "no network is running under '\(absolute(base))' (stopped: \(candidates.joined(separator: ", "))): pass --run-dir")
    }

    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// Emulated seconds per wall second the nodes run at: `--time-scale` if they were started
    /// with it, else the topology's.
    public var timeScale: Double {
        let args = manifest.nodeArguments
        if let i = args.firstIndex(of: "--time-scale"), i + 1 < args.count, let value = Double(args[i + 1]) { return value }
        return topology.timeScale
    }

    // MARK: Starting

    /// Starts one process per node of the topology at `topologyPath` and returns once every
    /// node printed its readiness line. On any failure every node started is stopped and the
    /// error carries the output of the node that did not come up.
    public static func up(topologyPath: String, runDir: String? = nil, binDirectory: String,
                          readyTimeoutSeconds: Double = 60, ioCPU: IOCPU = .auto, reproducible: Bool = false,
                          extraNodeArguments: [String] = [])
        throws(LaunchError) -> Network
    {
        var topology: Topology
        do {
            topology = try TopologyParser.load(path: topologyPath)
        } catch {
            throw LaunchError(.invalidTopology, "\(error)")
        }
        if reproducible { topology = topology.with(secrecy: .reproducible) }
        let layout = RunLayout(root: absolute(runDir ?? ".run/\(topology.name)"))
        if let existing = try? open(runDir: layout.root), !existing.livePIDs().isEmpty {
            throw LaunchError(.alreadyRunning, "network '\(existing.topology.name)' is already running in \(layout.root) (\(existing.livePIDs().count) nodes): stop it first with 'make down'")
        }
        if let problem = layout.validateEndpoints(for: topology) { throw LaunchError(.io, problem) }
        let nodeBinary = binDirectory + "/qkd-node"
        guard FileManager.default.isExecutableFile(atPath: nodeBinary) else {
            throw LaunchError(.spawnFailed, "no qkd-node executable at '\(nodeBinary)': build first (swift build -c release)")
        }
        let fm = FileManager.default
        do {
            // The run directory holds stores, keys and sockets: its owner's only (0700), as are
            // the directories made in it.
            try fm.createDirectory(atPath: layout.root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try fm.setAttributes([.posixPermissions: 0o700], ofItemAtPath: layout.root)
            for dir in [layout.pidsDirectory, layout.logsDirectory, layout.socketsDirectory] {
                try? fm.removeItem(atPath: dir)
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            try? fm.removeItem(atPath: layout.topologyPath)
            try fm.copyItem(atPath: topologyPath, toPath: layout.topologyPath)
            // The files it names (loss tables) beside the copy, where its nodes read them.
            let source = URL(fileURLWithPath: topologyPath).deletingLastPathComponent()
            let copy = URL(fileURLWithPath: layout.topologyPath).deletingLastPathComponent()
            for file in topology.dataFiles {
                let to = copy.appendingPathComponent(file)
                try fm.createDirectory(at: to.deletingLastPathComponent(), withIntermediateDirectories: true)
                try? fm.removeItem(at: to)
                try fm.copyItem(at: source.appendingPathComponent(file), to: to)
            }
        } catch {
            throw LaunchError(.io, "cannot prepare run directory '\(layout.root)': \(error.localizedDescription)")
        }
        // Certificates for the ETSI GS QKD 014 interface (kept across restarts of the network).
        try PKI(runDirectory: layout.root).ensure(for: topology)
        // Every KME's ML-KEM-768 key pair, for hybrid keys (kept across restarts).
        do {
            try KMEKeys.ensure(directory: layout.kemDirectory, nodes: topology.nodes.map(\.id.rawValue))
        } catch {
            throw LaunchError(.io, "cannot make the KMEs' ML-KEM keys under '\(layout.kemDirectory)': \(error)")
        }
        // Each link's pre-shared secret, at both ends (a secret run; kept across restarts).
        try Bootstrap.ensure(layout: layout, topology: topology)
        // CURVE key pairs of the nodes and the control client (kept across restarts).
        try ChannelKeyFiles.ensure(layout: layout, topology: topology)
        let manifest = NetworkManifest(topology: topology.name, topologySource: absolute(topologyPath),
                                       runDirectory: layout.root, binDirectory: absolute(binDirectory),
                                       startedAt: wallClockSeconds(),
                                       nodeArguments: ["--io-cpu", ioCPU.resolved(nodes: topology.nodes.count).map(String.init) ?? "none"]
                                           + (reproducible ? ["--reproducible"] : [])
                                           // A satellite network's emulated time starts now, the same at every node.
                                           + (topology.mission != nil ? ["--mission-origin", "\(SystemClock().now().nanoseconds)"] : [])
                                           + extraNodeArguments)
        try manifest.save(path: layout.networkPath)
        let network = Network(layout: layout, topology: topology, manifest: manifest)

        var started: [NodeID: Int32] = [:]
        do {
            for node in topology.nodes {
                started[node.id] = try network.startNode(node.id)
            }
            try network.waitReady(started, timeoutSeconds: readyTimeoutSeconds)
        } catch {
            Processes.stop(Array(started.values))
            network.removePIDFiles()
            throw error
        }
        return network
    }

    /// Starts the process of one node (also used to restart a node) and records its PID.
    public func startNode(_ id: NodeID) throws(LaunchError) -> Int32 {
        guard topology.node(id) != nil else { throw LaunchError(.unknownNode, "node '\(id)' is not in topology '\(topology.name)'") }
        let pid = try Processes.spawn(
            executable: manifest.binDirectory + "/qkd-node",
            arguments: ["--topology", layout.topologyPath, "--node", id.rawValue,
                        "--run-dir", layout.root] + manifest.nodeArguments,
            outputPath: layout.outputPath(id))
        do {
            try "\(pid)\n".write(toFile: layout.pidPath(id), atomically: true, encoding: .utf8)
        } catch {
            kill(pid, SIGKILL)
            throw LaunchError(.io, "cannot record PID of \(id) in '\(layout.pidPath(id))': \(error.localizedDescription)")
        }
        return pid
    }

    /// Waits until each of `nodes` has printed its readiness line since it was started.
    /// Fails at once if one of them exits, or at the deadline, naming the node and quoting
    /// its output and log.
    public func waitReady(_ nodes: [NodeID: Int32], timeoutSeconds: Double) throws(LaunchError) {
        var pending = nodes
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        while !pending.isEmpty {
            for (id, pid) in pending {
                if readinessLine(of: id, pid: pid) != nil {
                    pending[id] = nil
                    continue
                }
                let ended: String?
                switch Processes.childState(pid) {
                case .running: ended = nil
                case .exited(let code): ended = "exited with status \(code)"
                case .signaled(let signal): ended = "was killed by signal \(signal)"
                case .notChild: ended = Processes.isAlive(pid) ? nil : "exited"
                }
                if let ended {
                    throw LaunchError(.notReady, "node \(id) (pid \(pid)) \(ended) before it was ready\n\(diagnostics(id))")
                }
            }
            if pending.isEmpty { break }
            if Date() >= deadline {
                let id = pending.keys.sorted().first!
                throw LaunchError(.notReady, "\(pending.count) node(s) not ready after \(timeoutSeconds) s (first: \(id))\n\(diagnostics(id))")
            }
            usleep(20_000)
        }
    }

    /// The readiness line node `id` printed while running as `pid`, if any.
    public func readinessLine(of id: NodeID, pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: layout.outputPath(id), encoding: .utf8) else { return nil }
        return text.split(separator: "\n").last {
            $0.hasPrefix(Network.readinessMarker) && $0.contains(" pid=\(pid) ")
        }.map(String.init)
    }

    /// The last lines of a node's output and log, for error messages.
    public func diagnostics(_ id: NodeID, lines: Int = 20) -> String {
        func tail(_ path: String) -> String {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "  (no file)" }
            return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines)
                .map { "  " + $0 }.joined(separator: "\n")
        }
        return "--- \(layout.outputPath(id)) ---\n\(tail(layout.outputPath(id)))\n--- \(layout.logPath(id)) ---\n\(tail(layout.logPath(id)))"
    }

    // MARK: PIDs

    /// The recorded PID of `id`, whether or not it is alive.
    public func recordedPID(_ id: NodeID) -> Int32? {
        guard let text = try? String(contentsOfFile: layout.pidPath(id), encoding: .utf8) else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Recorded PIDs of nodes that are alive.
    public func livePIDs() -> [NodeID: Int32] {
        var result: [NodeID: Int32] = [:]
        for node in topology.nodes {
            if let pid = recordedPID(node.id), Processes.isRunning(pid) { result[node.id] = pid }
        }
        return result
    }

    func removePIDFiles() {
        for node in topology.nodes { try? FileManager.default.removeItem(atPath: layout.pidPath(node.id)) }
    }

    // MARK: Stopping

    /// Stops every recorded node (SIGTERM, then SIGKILL after `graceSeconds`) and removes
    /// the PID records. Returns how many were running and which needed SIGKILL.
    @discardableResult
    public func down(graceSeconds: Double = 3) -> (stopped: Int, killed: [NodeID]) {
        stopEves()
        let live = livePIDs()
        let killedPIDs = Set(Processes.stop(Array(live.values), graceSeconds: graceSeconds))
        removePIDFiles()
        return (live.count, live.filter { killedPIDs.contains($0.value) }.map(\.key).sorted())
    }

    // MARK: Status

    /// The control sockets of `nodes` (all by default), with the public key each node proves.
    /// A node whose key file is missing gets an empty key (its query fails, named).
    public func controlTargets(_ nodes: [NodeID]? = nil) -> [ControlTarget] {
        let wanted = nodes.map(Set.init)
        return topology.nodes.filter { wanted?.contains($0.id) ?? true }.map {
            ControlTarget(node: $0.id, endpoint: layout.controlEndpoint($0),
                          serverKey: control.serverKey(path: layout.nodePublicKeyPath($0.id)))
        }
    }

    /// Sends `request` to the control sockets of `nodes` (all by default) as the run's control
    /// key, and collects the replies (a node missing did not answer in time). Without a
    /// readable control key every node gets that error as its reply.
    public func query(_ nodes: [NodeID]? = nil, request: ControlRequest, timeoutMs: Int) -> [NodeID: ControlReply] {
        query(controlTargets(nodes), request: request, timeoutMs: timeoutMs)
    }

    /// `query` to explicit targets (an eavesdropper's control socket).
    public func query(_ targets: [ControlTarget], request: ControlRequest, timeoutMs: Int) -> [NodeID: ControlReply] {
        let credentials: CurveKeyPair
        do {
            credentials = try layout.controlKeys()
        } catch {
            return Dictionary(uniqueKeysWithValues: targets.map { ($0.node, ControlReply(error: "\(error)")) })
        }
        return control.query(targets, credentials: credentials, request: request, timeoutMs: timeoutMs)
    }

    /// Asks every live node for its status and merges the answers.
    public func status(timeoutMs: Int = 1500) -> NetworkStatus {
        let live = livePIDs()
        let replies = query(Array(live.keys), request: ControlRequest.status,
                                          timeoutMs: timeoutMs)
        var reports: [NodeID: NodeStatusReport] = [:]
        for (id, reply) in replies { if let status = reply.status { reports[id] = status } }

        let nodes = topology.nodes.map { node -> NetworkStatus.Node in
            let report = reports[node.id]
            let total = topology.links(of: node.id).count
            return NetworkStatus.Node(
                id: node.id.rawValue, role: node.role.rawValue, pid: live[node.id] ?? recordedPID(node.id),
                state: report != nil && live[node.id] != nil ? .up : .down, phase: report?.state,
                uptimeSeconds: report?.uptimeSeconds,
                linksUp: report?.links.filter { $0.state == .up }.count ?? 0, linksTotal: total, kmeURL: report?.kmeURL,
                relays: report?.relays)
        }
        let links = topology.links.map { link -> NetworkStatus.Link in
            let states = [link.a, link.b].compactMap { end in reports[end]?.links.first { $0.id == link.name }?.state }
            var faults: [String] = []
            for end in [link.a, link.b] {
                for f in reports[end]?.links.first(where: { $0.id == link.name })?.faults ?? [] where !faults.contains(f) { faults.append(f) }
            }
            return NetworkStatus.Link(id: link.name, a: link.a.rawValue, b: link.b.rawValue,
                                      lengthKm: link.lengthKm,
                                      state: LinkState.combined(states), faults: faults.isEmpty ? nil : faults)
        }
        return NetworkStatus(topology: topology.name, runDirectory: layout.root, seed: topology.seed,
                             secrecy: topology.secrecy.rawValue, nodes: nodes, links: links,
                             saes: topology.saes.map { .init(id: $0.id, node: $0.node.rawValue) })
    }
}
