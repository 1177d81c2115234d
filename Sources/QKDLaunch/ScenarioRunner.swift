import Foundation
import QKDAttacks
import QKDCore
import QKDTopology
import QKDWire

/// What `qkdctl scenario run` writes: the timeline as applied, per link samples over time, the
/// relays requested throughout, and the audit after the run (keys lost must be 0).
public struct ScenarioReport: Codable, Sendable {
    public struct EventResult: Codable, Sendable {
        public var atSeconds: Double
        public var action: String
        public var ok: Bool
        public var message: String
        enum CodingKeys: String, CodingKey { case atSeconds = "at_s", action, ok, message }
    }

    public struct LinkSample: Codable, Sendable {
        public var link: String
        public var state: LinkState
        public var qber: Double?
        public var keyRateBps: Double
        public var storedKeys: Int
        enum CodingKeys: String, CodingKey { case link, state, qber, keyRateBps = "key_rate_bps", storedKeys = "stored_keys" }
    }

    public struct Sample: Codable, Sendable {
        public var atSeconds: Double
        public var links: [LinkSample]
        enum CodingKeys: String, CodingKey { case atSeconds = "at_s", links }
    }

    /// Relays of one stream: attempted = delivered + failed; re-routed counts delivered relays
    /// whose path differs from the stream's first delivered path.
    public struct RelayTotals: Codable, Sendable {
        public var from: String
        public var to: String
        public var attempted = 0
        public var delivered = 0
        public var rerouted = 0
        public var failed = 0
        public var paths: [String: Int] = [:]
        public var failures: [String: Int] = [:]
    }

    public var scenario: String
    public var topology: String
    public var runDirectory: String
    public var durationSeconds: Double
    /// Emulated seconds per wall second the nodes ran at.
    public var timeScale: Double = 1
    /// Seconds waited before the timeline started, until every link had sifted a block.
    public var warmupSeconds: Double = 0
    public var events: [EventResult] = []
    public var samples: [Sample] = []
    public var relays: [RelayTotals] = []
    /// Every eavesdropper of the run: the last report of each one taken out, then those still in.
    public var eavesdroppers: [EavesdropperReport] = []
    public var audit: AuditReport?
    /// Keys held at one end of a link only, or differing between its ends, after the run.
    public var keysLost: Int = 0

    enum CodingKeys: String, CodingKey {
        case scenario, topology, events, samples, relays, eavesdroppers, audit
        case runDirectory = "run_dir", durationSeconds = "duration_s", keysLost = "keys_lost", warmupSeconds = "warmup_s"
        case timeScale = "time_scale"
    }

    /// The readable summary: per link the states seen, QBER range and mean key rate; relays;
    /// the audit.
    public var summary: String {
        var out = "scenario \(scenario) on \(topology): \(Int(durationSeconds)) s, \(samples.count) samples, time scale \(timeScale)\n\nevents:\n"
        for e in events { out += String(format: "  %6.1f s  %@  %@%@\n", e.atSeconds, e.action, e.ok ? "ok" : "FAILED", e.message.isEmpty ? "" : ": " + e.message) }
        out += "\nlinks (states seen, QBER min-max, mean key rate):\n"
        let names = samples.first?.links.map(\.link) ?? []
        for name in names {
            let series = samples.compactMap { $0.links.first { $0.link == name } }
            var states: [LinkState] = []
            for s in series where states.last != s.state { states.append(s.state) }
            let qbers = series.compactMap(\.qber)
            let rate = series.map(\.keyRateBps).reduce(0, +) / Double(max(1, series.count))
            let q = qbers.isEmpty ? "-" : String(format: "%.2f-%.2f %%", (qbers.min() ?? 0) * 100, (qbers.max() ?? 0) * 100)
            func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count + 1), withPad: " ", startingAt: 0) }
            out += "  " + pad(name, 28) + pad(states.map(\.rawValue).joined(separator: ">"), 30) + pad(q, 16) + String(format: "%10.0f bit/s\n", rate)
        }
        out += "\nrelays:\n"
        for r in relays {
            out += "  \(r.from) -> \(r.to): attempted \(r.attempted), delivered \(r.delivered), re-routed \(r.rerouted), failed \(r.failed)\n"
        }
        for e in eavesdroppers {
            out += "\neve on \(e.link) (\(e.attack)): \(e.knowledgeSummary)"
        }
        if let audit {
            out += "\n\naudit: \(audit.ok ? "OK" : "FAILED"), \(audit.linksChecked) links, \(audit.keysMatched) keys matched, "
                + "\(audit.mismatchedKeys) mismatched, \(audit.orphanKeys) orphans; keys lost: \(keysLost)"
        }
        return out + "\n"
    }
}

extension Scenario.Action {
    /// How the timeline shows the action.
    public var words: String {
        switch self {
        case .eve(let link, let attack, let fraction, let atKm):
            return "eve \(attack) on \(link), fraction \(fraction)" + (atKm.map { " at \($0) km" } ?? "")
        case .eveRemove(let link): return "eve removed from \(link)"
        case .cut(let link): return "cut \(link)"
        case .loss(let link, let db): return "loss \(db) dB on \(link)"
        case .delay(let link, let ms): return "delay \(ms) ms on \(link)"
        case .partition(let nodes): return "partition {\(nodes.map(\.rawValue).joined(separator: ", "))}"
        case .kill(let node): return "kill \(node)"
        case .restart(let node): return "restart \(node)"
        case .heal(let link): return link.map { "heal \($0)" } ?? "heal all (faults, eavesdroppers, dead nodes)"
        }
    }
}

extension Network {
    /// Runs `scenario` on this (running) network: once every link has sifted a block (or after
    /// `warmupLimitSeconds`), applies each event at its time, requests the relays of every
    /// stream at their pace, samples every link, and audits at the end. `log` gets one line per
    /// event as it happens.
    public func run(_ scenario: Scenario, warmupLimitSeconds: Double = 180, log: (String) -> Void = { _ in }) -> ScenarioReport {
        var report = ScenarioReport(scenario: scenario.name, topology: topology.name, runDirectory: layout.root,
                                    durationSeconds: scenario.durationSeconds)
        report.timeScale = timeScale
        let warmup = Date()
        while Date().timeIntervalSince(warmup) < warmupLimitSeconds && !pools(timeoutMs: 1500).links.allSatisfy({ $0.blocks >= 1 }) {
            usleep(200_000)
        }
        report.warmupSeconds = Date().timeIntervalSince(warmup)
        log(String(format: "every link sifting after %.1f s: the timeline starts", report.warmupSeconds))
        report.relays = scenario.relays.map { .init(from: $0.from.rawValue, to: $0.to.rawValue) }
        var firstPath: [[String]?] = scenario.relays.map { _ in nil }
        var nextRelay = scenario.relays.map { _ in 0.0 }
        var nextSample = 0.0
        var pending = scenario.events[...]
        var removed: [EavesdropperReport] = []
        let start = Date()
        func elapsed() -> Double { Date().timeIntervalSince(start) }
        while true {
            let t = elapsed()
            if t >= scenario.durationSeconds && pending.isEmpty { break }
            while let event = pending.first, event.atSeconds <= t {
                pending = pending.dropFirst()
                let (ok, message) = apply(event.action, removed: &removed)
                report.events.append(.init(atSeconds: t, action: event.action.words, ok: ok, message: message))
                log(String(format: "%6.1f s  %@: %@", t, event.action.words, ok ? (message.isEmpty ? "ok" : message) : "FAILED: " + message))
            }
            if t >= nextSample {
                nextSample += scenario.sampleEverySeconds
                let links = pools(timeoutMs: 1500).links.map {
                    ScenarioReport.LinkSample(link: $0.link, state: $0.state, qber: $0.qber, keyRateBps: $0.keyRateBps, storedKeys: $0.storedKeys)
                }
                report.samples.append(.init(atSeconds: t, links: links))
            }
            for (i, stream) in scenario.relays.enumerated() where elapsed() >= nextRelay[i] && elapsed() < scenario.durationSeconds {
                nextRelay[i] += stream.everySeconds
                report.relays[i].attempted += 1
                switch relay(from: stream.from, to: stream.to, bits: stream.bits, timeoutMs: 10_000) {
                case .success(let r) where r.ok:
                    report.relays[i].delivered += 1
                    report.relays[i].paths[r.path.joined(separator: ">"), default: 0] += 1
                    if firstPath[i] == nil { firstPath[i] = r.path } else if firstPath[i] != r.path { report.relays[i].rerouted += 1 }
                case .success(let r):
                    report.relays[i].failed += 1
                    report.relays[i].failures[ScenarioReport.reason(r.error ?? "failed"), default: 0] += 1
                case .failure(let e):
                    report.relays[i].failed += 1
                    report.relays[i].failures[ScenarioReport.reason(e.message), default: 0] += 1
                }
            }
            let upcoming = ([nextSample, scenario.durationSeconds] + nextRelay + (pending.first.map { [$0.atSeconds] } ?? [])).filter { $0 > elapsed() }
            if let wake = upcoming.min() { usleep(UInt32(min(0.5, max(0.005, wake - elapsed())) * 1e6)) }
        }
        report.eavesdroppers = removed + eves()
        let audit = self.audit()
        report.audit = audit
        report.keysLost = audit.mismatchedKeys + audit.orphanKeys
        return report
    }

    /// Carries out one action; whether it worked and what it said. The last reports of the
    /// eavesdroppers it took out are appended to `removed`.
    func apply(_ action: Scenario.Action, removed: inout [EavesdropperReport]) -> (Bool, String) {
        func outcome<T>(_ r: Result<T, LaunchError>, _ words: (T) -> String = { _ in "" }) -> (Bool, String) {
            switch r {
            case .success(let v): return (true, words(v))
            case .failure(let e): return (false, e.message)
            }
        }
        /// Takes Eve out of `link`, keeping her last report.
        func takeOut(_ link: String) -> Result<EavesdropperReport, LaunchError> {
            let result = removeEve(link: link)
            if case .success(let last) = result { removed.append(last) }
            return result
        }
        func knew(_ r: EavesdropperReport) -> String { String(format: "she knew %.2f %% of the sifted bits", r.knownFraction * 100) }
        switch action {
        case .eve(let link, let attack, let fraction, let atKm):
            guard let kind = Eavesdropper.Attack(rawValue: attack) else { return (false, "unknown attack \(attack)") }
            return outcome(addEve(link: link, attack: kind, fraction: fraction, atKm: atKm)) { "pid \($0.pid ?? 0)" }
        case .eveRemove(let link):
            return outcome(takeOut(link), knew)
        case .cut(let link): return outcome(fault(.cut(link: link)))
        case .loss(let link, let db): return outcome(fault(.loss(link: link, decibels: db)))
        case .delay(let link, let ms): return outcome(fault(.delay(link: link, milliseconds: ms)))
        case .partition(let nodes): return outcome(partition(Set(nodes))) { "links \($0.joined(separator: ", "))" }
        case .kill(let node):
            guard let pid = livePIDs()[node] else { return (false, "\(node) is not running") }
            kill(pid, SIGKILL)
            Processes.waitUntilGone([pid], seconds: 5)
            return (true, "pid \(pid)")
        case .restart(let node):
            do {
                let pid = try startNode(node)
                try waitReady([node: pid], timeoutSeconds: 60)
                return (true, "pid \(pid)")
            } catch {
                return (false, error.message)
            }
        case .heal(let link):
            if let link { return outcome(heal(link: link)) }
            let words = eves().compactMap { try? takeOut($0.link).get() }.map { "\($0.link) (\(knew($0)))" }
            return outcome(heal()) { _ in words.isEmpty ? "" : "eavesdroppers removed from \(words.joined(separator: ", "))" }
        }
    }
}

extension ScenarioReport {
    /// A failure message with relay and key IDs replaced by "ID", to count failures by kind.
    static func reason(_ message: String) -> String {
        let words = message.split(separator: " ").map { word -> String in
            let w = word.trimmingCharacters(in: CharacterSet(charactersIn: ":,;()"))
            return w.count == 36 && w.filter({ $0 == "-" }).count == 4 ? "ID" : String(word)
        }
        return String(words.joined(separator: " ").prefix(100))
    }
}
