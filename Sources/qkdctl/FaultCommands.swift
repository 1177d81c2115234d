import ArgumentParser
import Foundation
import QKDCore
import QKDLaunch
import QKDWire

/// `qkdctl fault ...`: faults injected into a running network, taken out by `heal`.
struct FaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault", abstract: "Inject faults into the running network (cut, loss, delay, partition, kill, restart) and heal them.",
        subcommands: [Cut.self, Loss.self, Delay.self, Partition.self, Kill.self, Restart.self, Heal.self])

    static func report(_ result: Result<[NodeID], LaunchError>, _ what: String) throws {
        switch result {
        case .success(let nodes): print("\(what) (applied at \(nodes.map(\.rawValue).joined(separator: ", ")))")
        case .failure(let e): throw CLIError(e.message)
        }
    }

    struct Cut: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fibre cut: nothing passes on the link, quantum or classical.")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Link name (A-B).") var link: String
        func run() throws { try FaultCommand.report(try options.network().fault(.cut(link: link)), "cut \(link)") }
    }

    struct Loss: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Extra attenuation on the link's quantum channel.")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Link name (A-B).") var link: String
        @Option(help: "Extra loss in dB (0...100).") var db: Double
        func run() throws { try FaultCommand.report(try options.network().fault(.loss(link: link, decibels: db)), "loss \(db) dB on \(link)") }
    }

    struct Delay: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One-way delay of the link's classical messages (each direction).")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Link name (A-B).") var link: String
        @Option(help: "Delay in milliseconds (0...60000).") var ms: Double
        func run() throws { try FaultCommand.report(try options.network().fault(.delay(link: link, milliseconds: ms)), "delay \(ms) ms on \(link)") }
    }

    struct Partition: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut the classical channels between the given nodes and the rest of the network (quantum channels stay).")
        @OptionGroup var options: NetworkOptions
        @Option(parsing: .upToNextOption, help: "Nodes on one side (space- or comma-separated).") var nodes: [String]
        func run() throws {
            let set = Set(nodes.flatMap { $0.split(separator: ",") }.map { NodeID(String($0)) })
            switch try options.network().partition(set) {
            case .success(let links): print("partitioned \(set.map(\.rawValue).sorted().joined(separator: ", ")): classical channels cut on \(links.joined(separator: ", "))")
            case .failure(let e): throw CLIError(e.message)
            }
        }
    }

    struct Kill: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "SIGKILL a node (a crash); its links go down at its neighbours.")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Node id.") var node: String
        func run() throws { try killNode(try options.network(), id: NodeID(node)) }
    }

    struct Restart: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a node again (stopping it first if it runs) and wait until it is ready.")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Node id.") var node: String
        @Option(help: "Seconds to wait for readiness.") var timeout: Double = 30
        func run() throws { try restartNode(try options.network(), id: NodeID(node), timeout: timeout) }
    }

    struct Heal: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear the faults of one link (--link) or of the whole network (--all, the default).")
        @OptionGroup var options: NetworkOptions
        @Option(help: "Link name (A-B).") var link: String?
        @Flag(help: "Every link (the default without --link).") var all = false
        func run() throws {
            if all && link != nil { throw CLIError("heal: give --link or --all, not both") }
            try FaultCommand.report(try options.network().heal(link: link), "healed \(link ?? "all links")")
        }
    }
}
