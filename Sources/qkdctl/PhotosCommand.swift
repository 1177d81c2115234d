import ArgumentParser
import Foundation
import QKDApps
import QKDLaunch
import QKDTopology
import QKDWire

/// The Jinan-1 story end to end: start the satellite network, send the photos from an SAE in
/// Jinan to one in Stellenbosch sealed with ETSI 014 keys that crossed the satellite, open them
/// there, compare them bit for bit, report the key consumed and the passes waited, stop the
/// network. Exits non-zero on any mismatch.
struct Photos: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send photos across a satellite network one-time-pad encrypted with relayed QKD keys, and check them bit for bit.")

    @Option(help: "The satellite network.")
    var topology = "Topologies/jinan1-stellenbosch.yaml"

    @Option(name: .customLong("run-dir"), help: "The run directory (default: .run/<name>).")
    var runDir: String?

    @Option(help: "The sending SAE.")
    var from = "SAE-Jinan"

    @Option(help: "The receiving SAE.")
    var to = "SAE-Stellenbosch"

    @Option(help: "Where the mailbox and the received photos go (default: under the run directory).")
    var out: String?

    @Option(help: "Wall seconds to wait for keys (the passes that bring them).")
    var wait: Double = 600

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Argument(help: "The photos (default: docs/photos/*.png).")
    var files: [String] = []

    struct Report: Encodable {
        struct Photo: Encodable {
            var name: String
            var bytes: Int
            var keys: Int
            var keyBits: Int
            var identical: Bool
            enum CodingKeys: String, CodingKey { case name, bytes, keys, identical, keyBits = "key_bits" }
        }
        var photos: [Photo]
        var keyBitsConsumed: Int
        var passesWaited: Int
        var emulatedStartUTC: Double?
        var emulatedEndUTC: Double?
        var wallSeconds: Double
        var ok: Bool
        enum CodingKeys: String, CodingKey {
            case photos, ok
            case keyBitsConsumed = "key_bits_consumed", passesWaited = "passes_waited"
            case emulatedStartUTC = "emulated_start_utc", emulatedEndUTC = "emulated_end_utc", wallSeconds = "wall_seconds"
        }
    }

    func run() throws {
        let photos = files.isEmpty ? try Self.shippedPhotos() : files
        let network: Network
        do {
            network = try Network.up(topologyPath: topology, runDir: runDir, binDirectory: binDirectory())
        } catch {
            throw CLIError(error.message)
        }
        defer { _ = network.down() }
        let base = out ?? network.layout.root + "/photos"
        let mailbox = base + "/mailbox", received = base + "/received"
        for dir in [mailbox, received] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let started = ContinuousClock.now
        let before = Self.missionState(network)
        if !json { print("\(network.topology.name): up; sending \(photos.count) photos \(from) → \(to), waiting up to \(Int(wait)) s for keys") }

        let sender = try kmeClient(network, sae: from)
        let (from, to, wait) = (from, to, wait)
        let deadline = ContinuousClock.now + .milliseconds(Int64(wait * 1000))
        let sent = try using(sender) { client in
            try await SecretMailbox.send(files: photos, mailbox: mailbox, client: client, master: from, slave: to, deadline: deadline)
        }
        let receiver = try kmeClient(network, sae: to)
        let got = try using(receiver) { client in
            try await SecretMailbox.receive(mailbox: mailbox, output: received, client: client, slave: to)
        }
        let after = Self.missionState(network)
        var report = Report(photos: [], keyBitsConsumed: sent.reduce(0) { $0 + $1.keyBits }, passesWaited: max(0, after.passes - before.passes),
                            emulatedStartUTC: before.utc, emulatedEndUTC: after.utc,
                            wallSeconds: Double((ContinuousClock.now - started).components.seconds), ok: true)
        for (file, s) in zip(photos, sent) {
            let original = FileManager.default.contents(atPath: file)
            let arrived = got.first { $0.name == s.name }.flatMap { FileManager.default.contents(atPath: $0.path) }
            let same = original != nil && original == arrived
            report.ok = report.ok && same
            report.photos.append(.init(name: s.name, bytes: s.bytes, keys: s.keys, keyBits: s.keyBits, identical: same))
        }
        if json {
            try printJSON(report)
        } else {
            for p in report.photos {
                print("\(p.name): \(p.bytes) bytes, \(p.keys) keys (\(p.keyBits) bits of key), \(p.identical ? "bit-exact at \(to)" : "DIFFERENT at \(to)")")
            }
            let span = [report.emulatedStartUTC, report.emulatedEndUTC].compactMap { $0 }.map(Self.iso)
            print("photos: \(report.ok ? "ok" : "MISMATCH"), \(report.keyBitsConsumed) key bits consumed, \(report.passesWaited) passes waited"
                  + (span.count == 2 ? " (emulated \(span[0]) → \(span[1]))" : "") + ", \(Int(report.wallSeconds)) s wall; in \(received)")
        }
        guard report.ok else { throw ExitCode(1) }
    }

    /// The photos shipped with the repository (run from its top directory).
    static func shippedPhotos() throws -> [String] {
        let dir = "docs/photos"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir).filter({ $0.hasSuffix(".png") }).sorted(), !names.isEmpty else {
            throw CLIError("no photos in \(dir)/ (run from the repository, or name the files)")
        }
        return names.map { "\(dir)/\($0)" }
    }

    /// Passes completed on every free-space link so far, and the emulated time, from the
    /// satellites' link reports.
    static func missionState(_ network: Network) -> (passes: Int, utc: Double?) {
        let reports = network.pools().links.compactMap { $0.ends.first { $0.freeSpace != nil }?.freeSpace }
        return (reports.reduce(0) { $0 + $1.passesCompleted }, reports.map(\.emulatedUTC).max())
    }

    static func iso(_ utc: Double) -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date(timeIntervalSince1970: utc.rounded()))
    }
}
