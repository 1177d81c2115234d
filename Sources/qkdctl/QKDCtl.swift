import ArgumentParser
import Foundation
import QKDLaunch

/// The operator's command line.
@main
struct QKDCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qkdctl",
        abstract: "Operate a QKDNet network: start, inspect, probe and stop it.",
        subcommands: [Up.self, Down.self, Run.self, Status.self, Pools.self, Audit.self, Relay.self, Routes.self, Watch.self, Ping.self, Sim.self, Passes.self,
                      Validate.self, NodeCommand.self, FaultCommand.self, EveCommand.self, ScenarioCommand.self, SecretCommand.self,
                      Photos.self])
}

/// Options shared by commands that act on a running network.
struct NetworkOptions: ParsableArguments {
    @Option(name: .customLong("run-dir"), help: "The network's run directory (default: the one running under .run/).")
    var runDir: String?

    func network() throws -> Network {
        do { return try Network.discover(runDir: runDir) } catch { throw CLIError(error.message) }
    }
}

/// An error qkdctl reports on standard error before exiting 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Where qkdctl and qkd-node live: the directory of this executable.
func binDirectory() -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().path
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    do {
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    } catch {
        throw CLIError("cannot encode the JSON output: \(error)")
    }
}
