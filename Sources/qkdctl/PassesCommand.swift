import ArgumentParser
import Foundation
import QKDPhysics
import QKDTopology

/// `qkdctl passes`: each satellite's passes over each ground station of a topology, from the
/// orbit alone (`PassPredictor`): start, end, duration, maximum elevation, minimum range.
struct Passes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the satellites' passes over the ground stations of a topology (from the orbits).")

    @Option(help: "Topology file.") var topology: String
    @Option(help: "Start of the window, ISO 8601 UTC (default: the mission's start, or the earliest orbit epoch).") var from: String?
    @Option(help: "Length of the window in hours (default: the mission's, or 24).") var hours: Double?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if let hours, !(hours > 0 && hours <= 24 * 366) { throw ValidationError("--hours must be in (0, 8784], got \(hours)") }
        if let from, ISO8601DateFormatter().date(from: from) == nil {
            throw ValidationError("--from: '\(from)' is not an ISO 8601 UTC time such as 2016-12-18T16:00:00Z")
        }
    }

    struct Row: Encodable {
        let satellite: String, station: String
        let start: String, end: String
        let durationSeconds: Double, maximumElevationDegrees: Double, minimumRangeKm: Double, culmination: String
        /// The Sun's elevation at the station at culmination; whether the station uses the pass
        /// (a night-only station leaves those by day out).
        let sunElevationDegrees: Double, used: Bool
        enum CodingKeys: String, CodingKey {
            case satellite, station, start, end, culmination, used
            case durationSeconds = "duration_s", maximumElevationDegrees = "max_elevation_deg", minimumRangeKm = "min_range_km"
            case sunElevationDegrees = "sun_elevation_deg"
        }
    }

    func run() throws {
        let t: Topology
        do { t = try TopologyParser.load(path: topology) } catch {
            throw CLIError("\(error)")
        }
        let satellites = t.nodes.filter { $0.orbit != nil }, stations = t.nodes.filter { $0.station != nil }
        guard !satellites.isEmpty, !stations.isEmpty else {
            throw CLIError("\(topology): passes need a satellite (role: satellite, orbit) and a ground station (role: ground-station)")
        }
        // The network's own window (its mission) unless told otherwise.
        let start = from.flatMap { ISO8601DateFormatter().date(from: $0)?.timeIntervalSince1970 }
            ?? t.mission?.start ?? satellites.compactMap { $0.orbit?.epoch }.min()!
        let hours = hours ?? t.mission?.hours ?? 24
        let stamp = ISO8601DateFormatter()
        var rows: [Row] = []
        for satellite in satellites {
            for station in stations {
                for p in PassPredictor.passes(of: satellite.orbit!, over: station.station!, from: start, to: start + hours * 3600) {
                    rows.append(Row(satellite: satellite.id.rawValue, station: station.id.rawValue,
                                    start: stamp.string(from: Date(timeIntervalSince1970: p.start)),
                                    end: stamp.string(from: Date(timeIntervalSince1970: p.end)),
                                    durationSeconds: (p.durationSeconds * 10).rounded() / 10,
                                    maximumElevationDegrees: (p.maximumElevationDegrees * 100).rounded() / 100,
                                    minimumRangeKm: (p.minimumRangeKm * 10).rounded() / 10,
                                    culmination: stamp.string(from: Date(timeIntervalSince1970: p.culmination)),
                                    sunElevationDegrees: (station.station!.sunElevationDegrees(at: p.culmination) * 10).rounded() / 10,
                                    used: station.station!.uses(p)))
                }
            }
        }
        rows.sort { ($0.start, $0.satellite, $0.station) < ($1.start, $1.satellite, $1.station) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(["passes": rows]), as: UTF8.self))
            return
        }
        print("passes of \(t.name) from \(stamp.string(from: Date(timeIntervalSince1970: start))) for \(hours) h (above each station's minimum elevation):")
        var table = [["SATELLITE", "STATION", "START (UTC)", "END (UTC)", "DURATION", "MAX ELEVATION", "MIN RANGE", "SKY"]]
        for r in rows {
            let sky = String(format: "%@ (Sun %.0f°)", SkyBackground.isDay(sunElevationDegrees: r.sunElevationDegrees) ? "day" : "night", r.sunElevationDegrees)
            table.append([r.satellite, r.station, r.start, r.end, String(format: "%.0f s", r.durationSeconds),
                          String(format: "%.1f°", r.maximumElevationDegrees), String(format: "%.0f km", r.minimumRangeKm),
                          sky + (r.used ? "" : ", not used: the station works by night")])
        }
        print(rows.isEmpty ? "no passes" : StatusTable.table(table))
    }
}
