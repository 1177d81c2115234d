import ArgumentParser
import CQKDSystem
import Foundation
import QKDCore
import QKDLaunch
import QKDTopology

/// Options of the commands that start a network.
struct StartOptions: ParsableArguments {
    @Option(help: "Topology file.")
    var topology: String

    @Option(name: .customLong("run-dir"), help: "Run directory (default: .run/<topology name>).")
    var runDir: String?

    @Option(help: "What a key pool write survives before a node acts on it: process (kill -9) or power (power loss too; an fsync per write). See docs/security.md.")
    var durability: String = "process"

    @Option(name: .customLong("time-scale"), help: "Emulated seconds per wall second, instead of the topology's time_scale (below 1 lightens the quantum layer of a large network on few cores).")
    var timeScale: Double?

    @Flag(help: "Secret randomness from the topology's seed too (secrecy: reproducible): the same keys every run, computable by anyone with the topology file. For experiments and tests; see docs/security.md.")
    var reproducible = false

    var nodeArguments: [String] { ["--durability", durability] + (timeScale.map { ["--time-scale", "\($0)"] } ?? []) }

    func validate() throws {
        guard ["process", "power"].contains(durability) else { throw ValidationError("--durability: expected process or power") }
        if let timeScale, let problem = Topology.timeScaleProblem(timeScale) {
            throw ValidationError("--time-scale: \(problem)")
        }
    }
}

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start one qkd-node process per node and wait until all are ready.")

    @OptionGroup var start: StartOptions

    @Option(help: "Seconds to wait for every node to be ready.")
    var timeout: Double = 90

    @Option(name: .customLong("io-cpu"), help: "CPU for every node's event loop, 'none', or 'auto' (CPU 0 for networks of at most \(Network.pinnedNetworkLimit) nodes, else none).")
    var ioCPU: String = "auto"

    func run() throws {
        let started = Date()
        let network: Network
        guard let pinning = Network.IOCPU(ioCPU) else { throw CLIError("--io-cpu: expected a CPU number, 'none' or 'auto', got '\(ioCPU)'") }
        do {
            network = try Network.up(topologyPath: start.topology, runDir: start.runDir, binDirectory: binDirectory(),
                                     readyTimeoutSeconds: timeout, ioCPU: pinning, reproducible: start.reproducible,
                                     extraNodeArguments: start.nodeArguments)
        } catch {
            throw CLIError(error.message)
        }
        let elapsed = Date().timeIntervalSince(started)
        print("network '\(network.topology.name)' up: \(network.topology.nodes.count) nodes, \(network.topology.links.count) links ready in \(String(format: "%.2f", elapsed)) s (secrecy \(network.topology.secrecy))")
        print("run directory: \(network.layout.root)  (seed \(network.topology.seed))")
    }
}

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop every node of the network by its recorded PID.")

    @OptionGroup var options: NetworkOptions

    func run() throws {
        let network: Network
        do {
            network = try options.network()
        } catch {
            // Nothing to stop is not a failure for `make down`.
            print("qkdctl down: \(error)")
            return
        }
        let result = network.down()
        var line = "network '\(network.topology.name)': stopped \(result.stopped) node(s)"
        if !result.killed.isEmpty { line += "; SIGKILL needed for \(result.killed.map(\.rawValue).joined(separator: ", "))" }
        print(line)
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a network, show the live view until Ctrl-C, then stop it.")

    @OptionGroup var start: StartOptions

    @Option(help: "Seconds between refreshes of the live view.")
    var interval: Double = 1

    func run() throws {
        guard qkd_install_stop_handlers() == 0 else { throw CLIError("cannot install signal handlers") }
        let network: Network
        do {
            network = try Network.up(topologyPath: start.topology, runDir: start.runDir, binDirectory: binDirectory(),
                                     reproducible: start.reproducible, extraNodeArguments: start.nodeArguments)
        } catch {
            throw CLIError(error.message)
        }
        LiveView(network: network, interval: interval).run()
        let result = network.down()
        print("\nnetwork '\(network.topology.name)' stopped (\(result.stopped) nodes)")
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Live view of nodes and links, refreshed until Ctrl-C.")

    @OptionGroup var options: NetworkOptions

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 1

    func run() throws {
        guard qkd_install_stop_handlers() == 0 else { throw CLIError("cannot install signal handlers") }
        LiveView(network: try options.network(), interval: interval).run()
    }
}

struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Act on one node process.",
        subcommands: [Kill.self, Start.self, Restart.self, Reset.self])

    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "SIGKILL a node by its recorded PID (fault injection).")
        @OptionGroup var options: NetworkOptions
        @Argument(help: "Node id.") var id: String

        func run() throws { try killNode(try options.network(), id: NodeID(id)) }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a node that is not running and wait until it is ready.")
        @OptionGroup var options: NetworkOptions
        @Argument(help: "Node id.") var id: String
        @Option(help: "Seconds to wait for readiness.") var timeout: Double = 30

        func run() throws {
            try startNode(try options.network(), id: NodeID(id), timeout: timeout)
        }
    }

    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a node gracefully (if running), start it again, wait until ready.")
        @OptionGroup var options: NetworkOptions
        @Argument(help: "Node id.") var id: String
        @Option(help: "Seconds to wait for readiness.") var timeout: Double = 30

        func run() throws { try restartNode(try options.network(), id: NodeID(id), timeout: timeout) }
    }

    struct Reset: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-provision a node whose key store or KEK is lost: fresh pre-shared keys on each of its links, installed at both ends.",
            discussion: """
                Stops the node if it runs and removes what is left of its store and key-encryption \
                key. Every link of the node gets new pre-shared keys and a new transcript-hash key \
                from the OS random source, written to both ends' bootstrap files; each neighbour \
                (all must run) replaces its keys of the link with them through the control \
                channel; then the node starts with a new store and its links distil again. Keys \
                the node held are gone: relays through it start from the new keys.
                """)
        @OptionGroup var options: NetworkOptions
        @Argument(help: "Node id.") var id: String
        @Option(help: "Seconds to wait for readiness.") var timeout: Double = 60

        func run() throws {
            do {
                let links = try options.network().resetNode(NodeID(id), readyTimeoutSeconds: timeout)
                print("reset \(id): new pre-shared keys on \(links.count) link(s): \(links.joined(separator: ", "))")
            } catch let error as LaunchError {
                throw CLIError(error.message)
            }
        }
    }
}

func killNode(_ network: Network, id: NodeID) throws {
    guard let pid = network.recordedPID(id), Processes.isAlive(pid) else { throw CLIError("node '\(id)' is not running") }
    kill(pid, SIGKILL)
    _ = Processes.waitForExit([pid], seconds: 5)
    print("killed \(id) (pid \(pid))")
}

func restartNode(_ network: Network, id: NodeID, timeout: Double) throws {
    if let pid = network.recordedPID(id), Processes.isAlive(pid) { Processes.stop([pid]) }
    try startNode(network, id: id, timeout: timeout)
}

func startNode(_ network: Network, id: NodeID, timeout: Double) throws {
    if let pid = network.recordedPID(id), Processes.isAlive(pid) {
        throw CLIError("node '\(id)' is already running (pid \(pid))")
    }
    do {
        let pid = try network.startNode(id)
        try network.waitReady([id: pid], timeoutSeconds: timeout)
        print("started \(id) (pid \(pid))")
    } catch {
        throw CLIError(error.message)
    }
}
