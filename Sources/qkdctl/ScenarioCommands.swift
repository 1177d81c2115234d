import ArgumentParser
import Foundation
import QKDAttacks
import QKDLaunch
import QKDTopology

/// `qkdctl scenario run FILE`: a timeline of attacks and faults, with relays throughout.
struct ScenarioCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario", abstract: "Run a scenario file (a timeline of eavesdroppers and faults, with relays throughout).",
        subcommands: [RunScenario.self, CheckScenario.self])

    static func load(_ file: String) throws -> (Scenario, Topology) {
        do {
            return try ScenarioParser.load(path: file, attacks: Eavesdropper.Attack.allCases.map(\.rawValue))
        } catch {
            throw CLIError(error.description)
        }
    }

    struct RunScenario: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run",
            abstract: "Start the scenario's network (unless it runs already), play the timeline, write the report, stop the network.",
            discussion: "The report goes to RUN_DIR/scenario-NAME.json and .txt (or --report PREFIX); its summary is printed. Exit status 1 when an event failed or keys were lost.")
        @Argument(help: "Scenario file (YAML).") var file: String
        @Option(name: .customLong("run-dir"), help: "Run directory (default: .run/<topology name>).") var runDir: String?
        @Option(help: "Report path prefix (.json and .txt are added).") var report: String?
        @Flag(help: "Leave the network running afterwards.") var keep = false

        func run() throws {
            let (scenario, topology) = try ScenarioCommand.load(file)
            let network: Network
            var started = false
            if let running = try? Network.discover(runDir: runDir ?? ".run/\(topology.name)"), !running.livePIDs().isEmpty {
                guard running.topology.name == topology.name else {
                    throw CLIError("the network running in \(running.layout.root) is '\(running.topology.name)', the scenario needs '\(topology.name)'")
                }
                network = running
            } else {
                do {
                    network = try Network.up(topologyPath: scenario.topologyPath, runDir: runDir, binDirectory: binDirectory(),
                                             extraNodeArguments: scenario.timeScale.map { ["--time-scale", "\($0)"] } ?? [])
                } catch {
                    throw CLIError(error.message)
                }
                started = true
            }
            print("scenario '\(scenario.name)': \(scenario.events.count) events over \(Int(scenario.durationSeconds)) s on \(topology.name) (\(network.layout.root))")
            let result = network.run(scenario) { print($0) }
            let prefix = report ?? "\(network.layout.root)/scenario-\(scenario.name)"
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                try encoder.encode(result).write(to: URL(fileURLWithPath: prefix + ".json"))
                try result.summary.write(toFile: prefix + ".txt", atomically: true, encoding: .utf8)
            } catch {
                throw CLIError("cannot write the report to \(prefix).json: \(error.localizedDescription)")
            }
            if started && !keep { network.down() }
            print("\n" + result.summary + "report: \(prefix).json, \(prefix).txt")
            if result.keysLost > 0 || result.events.contains(where: { !$0.ok }) || result.audit?.ok != true {
                throw ExitCode(1)
            }
        }
    }

    struct CheckScenario: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "check", abstract: "Check scenario files (and their topologies) without running them.")
        @Argument(help: "Scenario files.") var files: [String]

        func run() throws {
            var failed = false
            for file in files {
                do {
                    let (s, t) = try ScenarioCommand.load(file)
                    print("\(file): ok (\(s.events.count) events, \(s.relays.count) relay streams, \(Int(s.durationSeconds)) s on \(t.name))")
                } catch {
                    print("\(error)")
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
