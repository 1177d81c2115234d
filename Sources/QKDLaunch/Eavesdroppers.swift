import Foundation
import QKDAttacks
import QKDCore
import QKDTopology
import QKDTransport
import QKDWire

extension Network {
    /// Starts an eavesdropper process on `link` and splices it into the link's fibre and public
    /// channel without restarting the nodes: the `b` end first sends through it (and accepts
    /// frames from it), then the `a` end, which from then on emits its photons into the fibre
    /// up to Eve's point only. Returns Eve's first report. Any failure takes her out again.
    public func addEve(link name: String, attack: Eavesdropper.Attack, fraction: Double = 1, atKm: Double? = nil,
                       seed: UInt64? = nil, readyTimeoutSeconds: Double = 10) -> Result<EavesdropperReport, LaunchError> {
        guard let link = topology.link(named: name) else { return .failure(LaunchError(.control, "no link '\(name)' in \(topology.name)")) }
        guard (0...1).contains(fraction) else { return .failure(LaunchError(.control, "eve: fraction \(fraction) is outside 0...1")) }
        if let km = atKm, !(0...link.lengthKm).contains(km) {
            return .failure(LaunchError(.control, "eve: --at-km \(km) is outside the link's 0...\(link.lengthKm) km"))
        }
        if let pid = evePID(link.name), Processes.isRunning(pid, programName: "qkd-eve") {
            return .failure(LaunchError(.alreadyRunning, "an eavesdropper (pid \(pid)) is already on \(link.name): qkdctl eve remove --link \(link.name)"))
        }
        let live = livePIDs()
        for end in [link.a, link.b] where live[end] == nil {
            return .failure(LaunchError(.control, "eve: node \(end) of \(link.name) is not running"))
        }
        var arguments = ["--run-dir", layout.root, "--link", link.name, "--attack", attack.rawValue, "--fraction", "\(fraction)"]
        if let atKm { arguments += ["--at-km", "\(atKm)"] }
        if let seed { arguments += ["--seed", "\(seed)"] }
        let pid: Int32
        let eveKeys: CurveKeyPair
        do {
            // Her own CURVE key pair, fresh for this splice: the ends admit it on this link only,
            // only while she is spliced in.
            eveKeys = try CurveKeyPair.generate()
            try CurveKeyFile.write(eveKeys, public: layout.evePublicKeyPath(link.name), secret: layout.eveSecretKeyPath(link.name))
            try FileManager.default.createDirectory(atPath: layout.eveDirectory, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: layout.eveOutputPath(link.name))
            pid = try Processes.spawn(executable: manifest.binDirectory + "/qkd-eve", arguments: arguments,
                                      outputPath: layout.eveOutputPath(link.name))
            try "\(pid)\n".write(toFile: layout.evePIDPath(link.name), atomically: true, encoding: .utf8)
        } catch let error as LaunchError {
            return .failure(error)
        } catch {
            return .failure(LaunchError(.io, "eve: cannot record its PID in '\(layout.evePIDPath(link.name))': \(error.localizedDescription)"))
        }
        if let problem = waitEveReady(link.name, pid: pid, timeoutSeconds: readyTimeoutSeconds) {
            Processes.stop([pid], programName: "qkd-eve")
            try? FileManager.default.removeItem(atPath: layout.evePIDPath(link.name))
            return .failure(LaunchError(.notReady, problem))
        }
        let geometry = Eavesdropper.Settings.onLink(link, attack: attack, fraction: fraction, atKm: atKm)
        let endpoint = layout.evePeerEndpoint(link.name)
        for (end, transmittance) in [(link.b, nil), (link.a, geometry.settings.fromAlice)] as [(NodeID, Double?)] {
            let request = ControlRequest.splice(link: link.name, via: .init(endpoint: endpoint, key: eveKeys.publicKey, transmittance: transmittance))
            if let problem = ask(end, request) {
                _ = removeEve(link: link.name)
                return .failure(LaunchError(.control, "eve: node \(end) refused the splice: \(problem)"))
            }
        }
        return eveReport(link.name).map { .success($0) } ?? .failure(LaunchError(.control, "eve on \(link.name) does not answer"))
    }

    /// Takes the eavesdropper out of `link` (both ends send directly again, the `a` end emits
    /// into the whole channel), stops her process, and returns her last report.
    @discardableResult
    public func removeEve(link name: String) -> Result<EavesdropperReport, LaunchError> {
        guard let link = topology.link(named: name) else { return .failure(LaunchError(.control, "no link '\(name)' in \(topology.name)")) }
        guard let pid = evePID(link.name), Processes.isRunning(pid, programName: "qkd-eve") else {
            try? FileManager.default.removeItem(atPath: layout.evePIDPath(link.name))
            return .failure(LaunchError(.control, "no eavesdropper on \(link.name)"))
        }
        let live = livePIDs()
        var problems: [String] = []
        for end in [link.a, link.b] where live[end] != nil {
            if let problem = ask(end, ControlRequest.splice(link: link.name, via: nil)) { problems.append("\(end): \(problem)") }
        }
        let report = eveReport(link.name)
        Processes.stop([pid], programName: "qkd-eve")
        try? FileManager.default.removeItem(atPath: layout.evePIDPath(link.name))
        if !problems.isEmpty { return .failure(LaunchError(.control, "eve: unsplicing failed at " + problems.joined(separator: "; "))) }
        return report.map { .success($0) } ?? .failure(LaunchError(.control, "eve on \(link.name) did not answer before it stopped"))
    }

    /// Every eavesdropper running on this network, with what she learned so far.
    public func eves() -> [EavesdropperReport] {
        topology.links.compactMap { link in
            guard let pid = evePID(link.name), Processes.isRunning(pid, programName: "qkd-eve") else { return nil }
            return eveReport(link.name)
        }
    }

    /// Asks the eavesdropper on `link` for her report.
    public func eveReport(_ link: String, timeoutMs: Int = 3000) -> EavesdropperReport? {
        let target = ControlTarget(node: NodeID(link), endpoint: layout.eveControlEndpoint(link),
                                   serverKey: (try? CurveKeyFile.read(layout.evePublicKeyPath(link))) ?? "")
        let reply = query([target], request: ControlRequest.status, timeoutMs: timeoutMs)[NodeID(link)]
        return reply?.eve
    }

    /// Stops every eavesdropper process (part of `down`); returns how many ran.
    @discardableResult
    func stopEves() -> Int {
        let pids = topology.links.compactMap { link -> Int32? in
            defer { try? FileManager.default.removeItem(atPath: layout.evePIDPath(link.name)) }
            return evePID(link.name).flatMap { Processes.isRunning($0, programName: "qkd-eve") ? $0 : nil }
        }
        Processes.stop(pids, programName: "qkd-eve")
        return pids.count
    }

    func evePID(_ link: String) -> Int32? {
        guard let text = try? String(contentsOfFile: layout.evePIDPath(link), encoding: .utf8) else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// One control request to one node; the error it answered (or that it did not answer).
    private func ask(_ node: NodeID, _ request: ControlRequest) -> String? {
        guard let reply = query([node], request: request, timeoutMs: 3000)[node] else {
            return "did not answer"
        }
        return reply.error
    }

    /// Waits for Eve's readiness line; the reason she is not ready, or nil.
    private func waitEveReady(_ link: String, pid: Int32, timeoutSeconds: Double) -> String? {
        let deadline = Date(timeIntervalSinceNow: timeoutSeconds)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: layout.eveOutputPath(link), encoding: .utf8),
               text.contains("QKDNET EVE READY link=\(link) pid=\(pid) ") {
                return nil
            }
            switch Processes.childState(pid) {
            case .exited, .signaled:
                let output = (try? String(contentsOfFile: layout.eveOutputPath(link), encoding: .utf8)) ?? ""
                return "eve on \(link) exited before she was ready: \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
            case .running, .notChild:
                break
            }
            usleep(20_000)
        }
        return "eve on \(link) not ready after \(timeoutSeconds) s"
    }
}

extension EavesdropperReport {
    /// What Eve knows, beside (on a link without decoys) what GLLP charges to her at the gain
    /// Bob observed: one line, as `qkdctl eve list` and the scenario summary print it.
    public var knowledgeSummary: String {
        var out = String(format: "knows %llu of %llu sifted signal bits (%.2f %%)", knownSignalBits, siftedSignalBits, knownFraction * 100)
        if let delta = gllpTaggedFraction, let gain = signalGain {
            out += String(format: "; GLLP without decoys charges %.2f %% (tagged fraction at the observed signal gain %.3e)", delta * 100, gain)
        }
        return out
    }
}
