import ArgumentParser
import Foundation
import QKDCore
import QKDLaunch
import QKDStore
import QKDWire

struct Relay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Relay an end-to-end key between two nodes across trusted nodes, or show a relayed key.",
        subcommands: [RelayRequest.self, RelayShow.self], defaultSubcommand: RelayRequest.self)
}

struct RelayRequest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Relay a key from --from to --to; prints the path, latency and key ID (never the key).")

    @OptionGroup var options: NetworkOptions

    @Option(help: "Source node.")
    var from: String

    @Option(help: "Destination node.")
    var to: String

    @Option(help: "Key length in bits (a multiple of 8).")
    var bits: Int = 256

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        switch try options.network().relay(from: NodeID(from), to: NodeID(to), bits: bits) {
        case .success(let report):
            if json { try printJSON(report); return }
            print("key_ID  \(report.keyID)")
            print("path    \(report.path.joined(separator: " → ")) (\(report.path.count - 1) hops; trusted nodes that saw the key: \(report.path.joined(separator: ", ")))")
            print("latency \(String(format: "%.2f ms", report.latencyMs ?? .nan)), \(report.bits ?? bits) bits")
        case .failure(let error):
            throw CLIError(error.message)
        }
    }
}

struct RelayShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "The path of a relayed key and the nodes holding it (never the key).")

    @OptionGroup var options: NetworkOptions

    @Argument(help: "The relayed key's ID (UUID).")
    var keyID: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        var g = SystemRandomNumberGenerator()
        let reports = try options.network().relayShow(keyID: keyID, salt: UInt64.random(in: 1...UInt64.max, using: &g))
        guard let any = reports.values.first else { throw CLIError("no live node holds relayed key \(keyID)") }
        if json { try printJSON(reports.mapKeys(\.rawValue)); return }
        print("key_ID  \(keyID)")
        print("path    \(any.path.joined(separator: " → "))")
        print("kind    \(any.kind ?? "qkd")")
        print("held at \(reports.keys.map(\.rawValue).sorted().joined(separator: ", "))")
        let digests = reports.values.map(\.digest)
        if digests.contains(nil) {
            print("ends agree: not compared (keys under \(KeyDigester.minimumBits) bits are never digested)")
        } else {
            print("ends agree: \(Set(digests).count == 1 ? "yes" : "NO")")
        }
    }
}

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The path FROM would choose for a relay to TO, and why.")

    @OptionGroup var options: NetworkOptions

    @Argument(help: "Source node.")
    var from: String

    @Argument(help: "Destination node.")
    var to: String

    @Option(help: "Key length in bits (sets the keys each link must have).")
    var bits: Int = 256

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        switch try options.network().routes(from: NodeID(from), to: NodeID(to), bits: bits) {
        case .success(let report):
            if json { try printJSON(report); return }
            if let path = report.path {
                print("path: \(path.joined(separator: " → ")) (\(report.hops ?? 0) hops, \(String(format: "%.1f", report.distanceKm ?? 0)) km): fewest hops, then shortest fibre")
            } else {
                print("no usable path from \(from) to \(to)")
            }
            for e in report.excluded { print("  excluded \(e.link): \(e.reason)") }
        case .failure(let error):
            throw CLIError(error.message)
        }
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ f: (Key) -> K) -> [K: Value] { Dictionary<K, Value>(uniqueKeysWithValues: map { (f($0.key), $0.value) }) }
}
