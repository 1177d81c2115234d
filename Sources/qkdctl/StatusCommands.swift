import ArgumentParser
import CQKDSystem
import Foundation
import QKDCore
import QKDLaunch
import QKDPhysics
import QKDTopology
import QKDWire

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Nodes and links of the running network.")

    @OptionGroup var options: NetworkOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let network = try options.network()
        let status = network.status()
        if json { try printJSON(status); return }
        print(StatusTable.render(status))
        // A satellite network: where each satellite is, in emulated time (`pools --json` has it
        // per link end as `free_space`).
        if network.topology.links.contains(where: \.isFreeSpace) {
            let satellites = LiveView.satelliteTable(network.pools())
            if !satellites.isEmpty { print("\n" + satellites) }
        }
    }
}

struct Pools: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per link: quantum layer and key rate; per link end: the key pool (available, pending, reserved, consumed, auth reserve).")

    @OptionGroup var options: NetworkOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let network = try options.network()
        let pools = network.pools()
        if json { try printJSON(pools); return }
        var rows = [["LINK", "STATE", "BOUND (ε_sec/ε_cor)", "BLOCK BITS", "QBER", "GAIN", "SIFTED BITS", "KEY RATE", "f", "FAILED", "EMULATED", "WALL"]]
        for l in pools.links {
            let p = network.topology.link(named: l.link)?.physics
            let bound = p.map { p in
                !p.decoyStates ? "gllp-asymptotic" : p.finiteKey == .lim2014 ? String(format: "lim2014 (%.0e/%.0e)", p.epsSec, p.epsCor) : "asymptotic"
            } ?? "-"
            rows.append([l.link, l.state.rawValue, bound, p.map { p in p.blockPulses.map { String(format: "N=%.0e pulses", Double($0)) } ?? String(p.blockKeyBits) } ?? "-", l.qber.map { String(format: "%.2f%%", $0 * 100) } ?? "-",
                         l.gain.map { String(format: "%.3e", $0) } ?? "-", String(l.siftedBitsTotal),
                         String(format: "%.0f kbit/s", l.keyRateBps / 1000), l.ecEfficiency.map { String(format: "%.3f", $0) } ?? "-",
                         String(l.blocksFailedVerification), String(format: "%.2fs", l.emulatedSeconds), String(format: "%.1fs", l.wallSeconds)])
        }
        print(StatusTable.table(rows))
        print("")
        var ends = [["LINK", "END", "STATE", "SYNC", "AVAILABLE", "BITS", "PENDING", "CONSUMED", "AUTH RESERVE", "AUTH BITS",
                     "DROPPED", "ORPHANS REMOVED", "GENERATED BITS"]]
        for l in pools.links {
            let link = network.topology.link(named: l.link)
            for e in l.ends {
                let node = e.role == "alice" ? link?.a.rawValue : link?.b.rawValue
                ends.append([l.link, node ?? e.role, e.state.rawValue, e.synchronised ? "yes" : "no", String(e.storedKeys), String(e.storedBits),
                             String(e.pendingKeys), String(e.consumedKeysTotal), String(e.authReserveKeys),
                             String(e.authBitsTotal), String(e.droppedKeysTotal), String(e.orphansRemovedTotal), String(e.generatedBitsTotal)])
            }
        }
        print(StatusTable.table(ends))
        if !pools.unanswered.isEmpty {
            print("\nno answer in time from \(pools.unanswered.count) node(s): \(pools.unanswered.joined(separator: ", "))")
        }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that both ends of every link hold the same available keys with the same bits (keyed digests; no key is shown).",
        discussion: "Exits 1 when a key mismatches, a key is held at one end only, or an end does not answer.")

    @OptionGroup var options: NetworkOptions

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let report = try options.network().audit()
        if json {
            try printJSON(report)
        } else {
            var rows = [["LINK", "A KEYS", "B KEYS", "MATCHED", "MISMATCHED", "ORPHANS", "REACHABLE"]]
            for l in report.links {
                rows.append([l.link, String(l.aKeys), String(l.bKeys), String(l.keysMatched), String(l.mismatchedKeys),
                             String(l.orphanKeys), l.reachable ? "yes" : "NO"])
            }
            print(StatusTable.table(rows))
            print("\n\(report.linksChecked) links checked, \(report.keysMatched) keys matched, \(report.mismatchedKeys) mismatched, "
                  + "\(report.orphanKeys) orphans: \(report.ok ? "OK" : "FAILED")")
        }
        if !report.ok { throw ExitCode(1) }
    }
}

struct Ping: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure classical round trips over a link's peer channel (from its first end).")

    @OptionGroup var options: NetworkOptions

    @Option(help: "The link, as A-B.")
    var link: String

    @Option(help: "Sequential round trips.")
    var count: Int = 100

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let report: PingReport
        switch try options.network().ping(link: link, count: count) {
        case .success(let r): report = r
        case .failure(let e): throw CLIError(e.message)
        }
        if json { try printJSON(report); return }
        let sorted = report.roundTripsMicroseconds.sorted()
        func pct(_ p: Double) -> Double { sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(p * Double(sorted.count)))] }
        print(String(format: "%@: %d round trips, %d lost; p50 %.1f µs, p90 %.1f µs, p99 %.1f µs, max %.1f µs",
                     report.link, sorted.count, report.lost, pct(0.5), pct(0.9), pct(0.99), sorted.last ?? .nan))
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check topology files; print every problem with file, line and field.")

    @Argument(help: "Topology files.")
    var files: [String]

    func run() throws {
        var failed = 0
        for file in files {
            do {
                let topology = try TopologyParser.load(path: file)
                print("\(file): ok (\(topology.name): \(topology.nodes.count) nodes, \(topology.links.count) links, \(topology.saes.count) SAEs, seed \(topology.seed))")
            } catch {
                failed += 1
                FileHandle.standardError.write(Data("\(error)\n".utf8))
            }
        }
        if failed > 0 { throw ExitCode(2) }
    }
}

/// Human-readable rendering of a network status.
enum StatusTable {
    static func render(_ status: NetworkStatus) -> String {
        var rows = [["NODE", "ROLE", "PID", "STATE", "UPTIME", "LINKS"]]
        for node in status.nodes {
            rows.append([node.id, node.role, node.pid.map(String.init) ?? "-",
                         node.state == .up ? (node.phase == .up ? "up" : "up (\(node.phase.map(\.rawValue) ?? "?"))") : "down",
                         node.uptimeSeconds.map { formatDuration($0) } ?? "-",
                         "\(node.linksUp)/\(node.linksTotal)"])
        }
        var out = table(rows)
        out += "\n\(status.nodesUp)/\(status.nodes.count) nodes up, \(status.linksUp)/\(status.links.count) links up"
        out += status.secrecy == Secrecy.reproducible.rawValue
            ? "\nsecrecy: reproducible (seed \(status.seed) gives every key: for experiments only)"
            : "\nsecrecy: \(status.secrecy) (keys from the OS CSPRNG; seed \(status.seed) gives the physics only)"
        for state in [LinkState.compromised, .down] {
            let links = status.links.filter { $0.state == state }
            guard !links.isEmpty else { continue }
            out += "\nlinks \(state): " + links.prefix(12).map(\.id).joined(separator: ", ") + (links.count > 12 ? ", …" : "")
        }
        return out
    }

    static func table(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func formatDuration(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\((s % 3600) / 60)m"
    }
}

/// The live view of `watch` and `run`: redraws nodes and links every `interval` seconds
/// until SIGINT or SIGTERM.
struct LiveView {
    let network: Network
    let interval: Double

    func run() {
        let fd = qkd_stop_fd()
        while qkd_stop_signal() == 0 {
            let status = network.status()
            let pools = network.pools()
            let clock = DateFormatter.localizedString(from: Date(), dateStyle: .none, timeStyle: .medium)
            var out = "\u{1B}[H\u{1B}[2J"
            out += "QKDNet — \(status.topology) — \(clock) — Ctrl-C to stop\n"
            out += "\(status.nodesUp)/\(status.nodes.count) nodes up, \(status.linksUp)/\(status.links.count) links up"
            let down = status.nodes.filter { $0.state != .up }.map(\.id)
            if !down.isEmpty { out += "; nodes down: " + down.joined(separator: ", ") }
            var faults = Dictionary(uniqueKeysWithValues: status.links.map { ($0.id, $0.faults ?? []) })
            for eve in network.eves() {
                faults[eve.link, default: []].append(String(format: "eve: %@ (knows %.1f %% of sifted)", eve.attack, eve.knownFraction * 100))
            }
            out += "\n\n" + LiveView.linkTable(pools, faults: faults) + "\n"
            let satellites = LiveView.satelliteTable(pools)
            if !satellites.isEmpty { out += "\n" + satellites + "\n" }
            let relays = LiveView.relayTable(status)
            out += relays.isEmpty ? "\nno key relays yet\n" : "\nkey relays (since each node started):\n" + relays + "\n"
            print(out, terminator: "")
            fflush(nil)
            var item = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&item, 1, Int32(interval * 1000))
        }
    }

    /// One row per node whose relay did anything: relays asked of it, refused for want of a
    /// path, started, delivered, failed, received as destination, forwarded in between, and ETSI
    /// 014 requests answered 503 at the KME's bounds / held off after a destination refused.
    static func relayTable(_ status: NetworkStatus) -> String {
        var rows = [["NODE", "ASKED", "NO PATH", "STARTED", "DELIVERED", "FAILED", "RECEIVED", "FORWARDED", "BUSY/HELD", "LAST FAILURE"]]
        for node in status.nodes {
            guard let r = node.relays, r.requested + r.received + r.forwarded + r.refusedBusy + r.heldOff > 0 else { continue }
            rows.append([node.id, String(r.requested), String(r.noPath), String(r.started), String(r.delivered), String(r.failed),
                         String(r.received), String(r.forwarded), "\(r.refusedBusy)/\(r.heldOff)", String((r.lastFailure ?? "").prefix(60))])
        }
        return rows.count == 1 ? "" : StatusTable.table(rows)
    }

    /// One row per free-space link, from its satellite end's report: emulated time (UTC), in
    /// view of the station or not, elevation, range and loss now, the next pass, passes done of
    /// the mission's, and key: the last pass's block (ℓ) and all passes' final bits. Empty
    /// without free-space links.
    static func satelliteTable(_ pools: PoolsStatus) -> String {
        var rows = [["SATELLITE", "STATION", "EMULATED (UTC)", "VIEW", "ELEVATION", "RANGE", "LOSS", "SKY", "NEXT PASS (UTC)", "PASSES",
                     "LAST PASS KEY", "KEY, ALL PASSES"]]
        for l in pools.links {
            guard let end = l.ends.first(where: { $0.freeSpace != nil }), let f = end.freeSpace else { continue }
            let next = f.nextPassStart.map { start in "\(utc(start))–\(f.nextPassEnd.map { String(utc($0).suffix(9)) } ?? "?")" } ?? "none"
            rows.append([f.satellite, f.station, utc(f.emulatedUTC), f.inView ? "in view" : "-",
                         String(format: "%.1f°", f.elevationDegrees), String(format: "%.0f km", f.rangeKm),
                         f.lossDb.map { String(format: "%.1f dB", $0) } ?? "-",
                         f.sunElevationDegrees.map { String(format: "%@ (Sun %.0f°)", SkyBackground.isDay(sunElevationDegrees: $0) ? "day" : "night", $0) } ?? "-",
                         next, "\(f.passesCompleted)/\(f.passesTotal)",
                         end.finiteKey.map { "\($0.keyBits) bits" } ?? "-", "\(end.finalBitsTotal) bits"])
        }
        return rows.count == 1 ? "" : StatusTable.table(rows)
    }

    /// `2016-12-18T16:52:11Z`.
    static func utc(_ seconds: Double) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: seconds.rounded(.down)))
    }

    static func linkTable(_ pools: PoolsStatus, faults: [String: [String]] = [:]) -> String {
        var rows = [["LINK", "STATE", "QBER", "KEY RATE", "POOL (KEYS)", "SIFTED BITS", "EMULATED/WALL", "FAULTS"]]
        for l in pools.links {
            rows.append([l.link, l.state.rawValue, l.qber.map { String(format: "%.2f%%", $0 * 100) } ?? "-",
                         String(format: "%.0f kbit/s", l.keyRateBps / 1000), String(l.storedKeys), String(l.siftedBitsTotal),
                         l.wallSeconds > 0 ? String(format: "%.2fs / %.0fs", l.emulatedSeconds, l.wallSeconds) : "-",
                         (faults[l.link] ?? []).joined(separator: ", ")])
        }
        return StatusTable.table(rows)
    }
}
