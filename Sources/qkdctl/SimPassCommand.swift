import ArgumentParser
import Foundation
import QKDCore
import QKDLink
import QKDPhysics
import QKDPostProcessing
import QKDTopology
import QKDWire

/// `qkdctl sim pass`: one satellite pass over one ground station, in-process (`PassSimulation`),
/// from the topology's orbit or from a measured track, with the link's channel and physics.
struct SimPass: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pass",
        abstract: "Emulate one satellite pass in-process: per second range, elevation, loss, sifted bits, QBER; for the pass its key.")

    @Option(help: "Topology file.") var topology: String
    @Option(help: "Satellite node.") var satellite: String
    @Option(help: "Ground-station node.") var station: String
    @Option(name: .customLong("pass"), help: "Which pass from the orbit's epoch (1: the first).") var passNumber: Int = 1
    @Option(help: "Hours after the epoch in which to look for it.") var hours: Double = 48
    @Option(help: "Drive the range from a measured track (CSV time_s,range_km; elevation from the orbit's altitude) instead of the orbit.")
    var track: String?
    @Option(help: "Root seed (physics).") var seed: UInt64 = 1
    @Flag(help: "Secret randomness from the seed too.") var reproducible = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard passNumber >= 1 else { throw ValidationError("--pass must be 1 or more") }
        guard hours > 0, hours <= 24 * 366 else { throw ValidationError("--hours must be in (0, 8784]") }
    }

    func run() throws {
        let t: Topology
        do { t = try TopologyParser.load(path: topology) } catch { throw CLIError("\(error)") }
        guard let sat = t.node(NodeID(satellite)), let orbit = sat.orbit else { throw CLIError("\(topology): no satellite '\(satellite)'") }
        guard let ground = t.node(NodeID(station)), let site = ground.station else { throw CLIError("\(topology): no ground station '\(station)'") }
        guard let link = t.links.first(where: { Set([$0.a, $0.b]) == [sat.id, ground.id] }), case .freeSpace(let channel) = link.medium else {
            throw CLIError("\(topology): no free-space link between '\(satellite)' and '\(station)'")
        }
        let passes = PassPredictor.passes(of: orbit, over: site, from: orbit.epoch, to: orbit.epoch + hours * 3600)
        guard passNumber <= passes.count else {
            throw CLIError("\(satellite) passes over \(station) \(passes.count) times in the \(hours) h after its epoch; --pass \(passNumber) is not one")
        }
        let pass = passes[passNumber - 1]
        let geometry: PassSimulation.Geometry, duration: Double
        if let track {
            guard let text = try? String(contentsOfFile: track, encoding: .utf8) else { throw CLIError("--track: cannot read '\(track)'") }
            let measured: RangeTrack
            do { measured = try RangeTrack(csv: text) } catch { throw CLIError("\(track)\(error.line > 0 ? ":\(error.line)" : ""): \(error.message)") }
            duration = measured.durationSeconds
            let h = orbit.altitudeKm, s = site.altitudeMetres / 1000
            geometry = { time in
                let r = measured.rangeKm(at: time)
                return (r, LookAngles.elevation(altitudeKm: h, rangeKm: r, stationAltitudeKm: s))
            }
        } else {
            duration = pass.durationSeconds
            let start = pass.start
            geometry = { time in
                let look = site.look(at: orbit.earthFixedPosition(at: start + time))
                return (look.rangeKm, look.elevationDegrees)
            }
        }
        let p = link.physics, distillation = link.distillation
        var configuration = BB84Configuration(pulsesPerFrame: UInt32(max(1, min(p.sourceRateHz / 10, Double(1 << 26)))), source: distillation.source)
        configuration.darkCountProbability = p.darkCountProbability
        let simulation = PassSimulation(configuration: configuration, distillation: distillation, detectorEfficiency: p.detectorEfficiency,
                                        misalignment: p.misalignment, sourceRateHz: p.sourceRateHz, channel: channel, seed: seed,
                                        secrecy: reproducible ? .reproducible : .secret)
        let started = Date()
        // The sky at the station: the Sun's elevation there decides day or night, frame by frame.
        let sky = link.background, passStart = pass.start
        let sunAtCulmination = site.sunElevationDegrees(at: pass.culmination)
        let outcome = try simulation.run(durationSeconds: duration, geometry: geometry) { time in
            sky.countsPerSecond(sunElevationDegrees: site.sunElevationDegrees(at: passStart + time))
        }
        let stamp = ISO8601DateFormatter()
        let report = SimPassReport(
            satellite: satellite, station: station, pass: passNumber, driven: track == nil ? "orbit" : "track",
            start: stamp.string(from: Date(timeIntervalSince1970: pass.start)), durationSeconds: duration,
            maximumElevationDegrees: pass.maximumElevationDegrees, minimumRangeKm: pass.minimumRangeKm, pulses: outcome.pulses,
            seconds: outcome.seconds.map { SimPassReport.Second(t: $0.t, rangeKm: $0.rangeKm, elevationDegrees: $0.elevationDegrees, lossDb: $0.lossDb,
                                                 siftedBits: $0.siftedBits, qber: $0.qber) },
            siftedBits: outcome.siftedBits, keyBits: outcome.keyBits, qber: outcome.qber, finalKeyBits: outcome.finalKeyBits,
            epsSec: p.epsSec, epsCor: p.epsCor, keysIdenticalAtBothEnds: outcome.keysMatch, finiteKey: outcome.finiteKey,
            seed: seed, secrecy: reproducible ? "reproducible" : "secret",
            sunElevationDegrees: sunAtCulmination, backgroundCountsPerSecond: sky.countsPerSecond(sunElevationDegrees: sunAtCulmination))
        if json {
            try printJSON(report)
            return
        }
        print("\(satellite) over \(station), pass \(passNumber) (\(report.start), driven by the \(report.driven)); "
              + "\(SkyBackground.isDay(sunElevationDegrees: sunAtCulmination) ? "day" : "night") (Sun \(String(format: "%.0f", sunAtCulmination))°), "
              + "sky background \(String(format: "%.0f", report.backgroundCountsPerSecond)) counts/s per detector:")
        var rows = [["T", "RANGE", "ELEVATION", "LOSS", "SIFTED BITS", "QBER"]]
        for s in report.seconds where Int(s.t) % 10 == 0 {
            rows.append([String(format: "%.0f s", s.t), String(format: "%.0f km", s.rangeKm), String(format: "%.1f°", s.elevationDegrees),
                         String(format: "%.2f dB", s.lossDb), String(s.siftedBits), String(format: "%.2f%%", s.qber * 100)])
        }
        print(StatusTable.table(rows))
        print(String(format: "pass: %.0f s, %llu sifted signal bits, QBER %.2f %%, final key %llu bits (ε_sec %g, ε_cor %g), keys identical at both ends: %@; wall %.1f s",
                     duration, outcome.siftedBits, outcome.qber * 100, outcome.finalKeyBits, p.epsSec, p.epsCor,
                     outcome.keysMatch ? "yes" : "NO", Date().timeIntervalSince(started)))
    }
}

/// What `qkdctl sim pass --json` prints (field names fixed: other tools read them).
struct SimPassReport: Encodable {
    struct Second: Encodable {
        var t: Double, rangeKm: Double, elevationDegrees: Double, lossDb: Double, siftedBits: UInt64, qber: Double
        enum CodingKeys: String, CodingKey {
            case t, qber
            case rangeKm = "range_km", elevationDegrees = "elevation_deg", lossDb = "loss_db", siftedBits = "sifted_bits"
        }
    }
    var satellite: String, station: String, pass: Int, driven: String, start: String
    var durationSeconds: Double, maximumElevationDegrees: Double, minimumRangeKm: Double, pulses: UInt64
    var seconds: [Second]
    var siftedBits: UInt64, keyBits: Int, qber: Double, finalKeyBits: UInt64, epsSec: Double, epsCor: Double
    var keysIdenticalAtBothEnds: Bool
    var finiteKey: FiniteKeyReport?
    var seed: UInt64, secrecy: String
    /// The Sun's elevation at the station at culmination, and the sky's light then.
    var sunElevationDegrees: Double, backgroundCountsPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case satellite, station, pass, driven, start, pulses, seconds, qber, seed, secrecy
        case durationSeconds = "duration_s", maximumElevationDegrees = "max_elevation_deg", minimumRangeKm = "min_range_km"
        case siftedBits = "sifted_bits", keyBits = "key_bits", finalKeyBits = "final_key_bits", epsSec = "eps_sec", epsCor = "eps_cor"
        case keysIdenticalAtBothEnds = "keys_identical_at_both_ends", finiteKey = "finite_key"
        case sunElevationDegrees = "sun_elevation_deg", backgroundCountsPerSecond = "background_cps"
    }
}
