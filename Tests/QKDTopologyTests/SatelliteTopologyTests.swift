import Foundation
import QKDCore
import QKDPhysics
import QKDTopology
import Testing

/// Satellite topologies: the shipped Micius pass against the measured track, passes of a night,
/// and every malformed satellite, station or free-space link refused with its field named.
@Suite struct SatelliteTopologyTests {
    static let micius = "\(topologiesDirectory)/micius-xinglong.yaml"

    static func track() throws -> [(t: Double, rangeKm: Double)] {
        try RangeTrack(csv: String(contentsOfFile: "\(topologiesDirectory)/micius2017/track.csv", encoding: .utf8)).points
    }

    /// The orbit was fitted to three numbers of the pass (its closest approach, its time, where
    /// the track starts); the whole measured range curve is a test it did not see.
    @Test func theReconstructedMiciusPassFollowsTheMeasuredTrack() throws {
        let topology = try TopologyParser.load(path: Self.micius)
        let micius = try #require(topology.node(NodeID("Micius"))), xinglong = try #require(topology.node(NodeID("Xinglong")))
        let orbit = try #require(micius.orbit), site = try #require(xinglong.station)
        #expect(micius.role == .satellite && xinglong.role == .groundStation)
        let link = try #require(topology.link(named: "Micius-Xinglong"))
        guard case .freeSpace(.table(let table)) = link.medium else { Issue.record("\(link.medium)"); return }
        #expect(abs(table.lossDb(rangeKm: 645) - 29.754) < 1e-9)
        let passes = PassPredictor.passes(of: orbit, over: site, from: orbit.epoch, to: orbit.epoch + 3600)
        let pass = try #require(passes.first)
        #expect(passes.count == 1)
        #expect(abs(pass.durationSeconds - 274) < 274 * 0.02, "\(pass.durationSeconds) s")
        #expect(abs(pass.minimumRangeKm - 645) < 2)
        let track = try Self.track()
        #expect(track.count == 2741)
        // The track's closest approach (the middle of its 645.000 km plateau) at the culmination.
        let least = track.map(\.rangeKm).min()!
        let plateau = track.filter { $0.rangeKm < least + 0.001 }.map(\.t)
        let offset = pass.culmination - (plateau.first! + plateau.last!) / 2
        #expect(abs(offset - pass.start) < 3, "the pass starts \(offset - pass.start) s from where the track does")
        var worst = 0.0
        for point in track {
            let range = site.look(at: orbit.earthFixedPosition(at: offset + point.t)).rangeKm
            worst = max(worst, abs(range / point.rangeKm - 1))
        }
        #expect(worst < 0.01, "the orbit's range departs from the measured track by \(worst * 100) %")
        print(String(format: "micius: pass %.0f s, closest %.1f km at %.2f°; range within %.2f %% of the measured track", pass.durationSeconds,
                     pass.minimumRangeKm, pass.maximumElevationDegrees, worst * 100))
    }

    /// Above 10°: a pass culminating at 25° or more lasts 4 minutes to the 7.3 of a zenith pass.
    @Test func miciusSeesXinglongOnceOrTwiceANightForFourToSevenMinutes() throws {
        let topology = try TopologyParser.load(path: Self.micius)
        let orbit = try #require(topology.node(NodeID("Micius"))?.orbit)
        var site = try #require(topology.node(NodeID("Xinglong"))?.station)
        site.minimumElevationDegrees = 10
        for night in 0..<7 {
            // 22:00 to 06:00 Beijing time (UTC+8).
            let dusk = orbit.epoch - 2 * 3600 + Double(night) * 86_400
            let passes = PassPredictor.passes(of: orbit, over: site, from: dusk, to: dusk + 8 * 3600)
            #expect((1...2).contains(passes.count), "night \(night): \(passes.count) passes")
            for p in passes where p.maximumElevationDegrees >= 25 {
                #expect(p.durationSeconds >= 240 && p.durationSeconds <= 450, "night \(night): \(p.durationSeconds) s at \(p.maximumElevationDegrees)°")
            }
        }
    }

    static let satelliteFixture = """
        name: sat
        seed: 1
        nodes:
          - id: S
            role: satellite
            orbit: { altitude_km: 500, inclination_deg: 97.4, raan_deg: 10, phase_deg: 20, epoch: "2020-01-01T00:00:00Z" }
          - { id: G, lat: 40, lon: 117, altitude_m: 50, min_elevation_deg: 15, role: ground-station }
          - { id: C, lat: 40.1, lon: 117.1, role: metro-core }
        links:
          - { a: S, b: G, type: free-space, channel: { receive_aperture_m: 1.0, divergence_urad: 10, pointing_jitter_urad: 2.5, zenith_transmittance: 0.7, optical_efficiency: 0.16 } }
          - { a: G, b: C, length_km: 20 }
        saes:
          - { id: SAE-C, node: C }
        """

    /// The satellite topologies' schedules: a day of Jinan-1's passes is a few minutes of wall
    /// time (the issue's bound: 10), and each has the night passes its story needs.
    @Test func aDayOfJinan1PassesPlaysInUnderTenMinutesOfWallTime() throws {
        let topology = try TopologyParser.load(path: "\(topologiesDirectory)/jinan1-stellenbosch.yaml")
        let timeline = try #require(topology.missionTimeline)
        #expect(timeline.mission.hours == 24)
        let inView = timeline.passes.reduce(0.0) { $0 + $1.pass.durationSeconds }
        // Passes at the time scale, each gap between them in gap_wall_s.
        #expect(abs(timeline.wallSeconds - (inView / topology.timeScale + Double(timeline.passes.count + 1) * 2)) < 2.5,
                "\(timeline.wallSeconds) s")
        #expect(timeline.wallSeconds <= 600, "a day of passes takes \(timeline.wallSeconds) s of wall")
        let stations = Set(timeline.passes.map(\.station.rawValue))
        #expect(stations == ["Jinan-GS", "Stellenbosch"])
        // Its stations work by night: the two passes by day are left out of the mission.
        #expect(timeline.passes.count == 2)
        let always = try TopologyParser.parse(String(contentsOfFile: "\(topologiesDirectory)/jinan1-stellenbosch.yaml", encoding: .utf8)
            .replacingOccurrences(of: "night_only: true", with: "night_only: false"), file: "j.yaml")
        #expect(try #require(always.missionTimeline).passes.count == 4)
        let europe = try TopologyParser.load(path: "\(topologiesDirectory)/micius-china-europe.yaml")
        let order = try #require(europe.missionTimeline).passes.map(\.station.rawValue)
        #expect(order == ["Xinglong", "Nanshan", "Nanshan", "Graz", "Graz"], "\(order)")
    }

    @Test func aLinkBudgetSatelliteTopologyParses() throws {
        let t = try TopologyParser.parse(Self.satelliteFixture, file: "sat.yaml")
        #expect(t.node(NodeID("S"))?.orbit?.altitudeKm == 500)
        #expect(t.node(NodeID("G"))?.station == GroundSite(latitudeDegrees: 40, longitudeDegrees: 117, altitudeMetres: 50, minimumElevationDegrees: 15))
        #expect(t.node(NodeID("C"))?.station == nil)
        guard case .freeSpace(.budget(let b))? = t.link(named: "S-G")?.medium else { Issue.record("not a budget"); return }
        #expect(b.pointingJitterMicroradians == 2.5)
        #expect(t.link(named: "S-G")?.background == SkyBackground.dark, "no sky background unless given")
        #expect(t.link(named: "G-C")?.medium == .fibre)
        let lit = try TopologyParser.parse(Self.satelliteFixture.replacingOccurrences(
            of: "pointing_jitter_urad: 2.5, ", with: "pointing_jitter_urad: 2.5, background_night_cps: 150, background_day_cps: 2.0e4, "), file: "sat.yaml")
        #expect(lit.link(named: "S-G")?.background == SkyBackground(nightCountsPerSecond: 150, dayCountsPerSecond: 2e4))
    }

    @Test(arguments: [
        ("orbit: { altitude_km: 500", "role: satellite\n", "nodes[0].orbit", "a satellite needs an orbit"),
        ("id: S\n", "id: S\n    lat: 3\n", "nodes[0].lat", "a satellite's position comes from its orbit"),
        ("raan_deg: 10", "raan_deg: 360", "nodes[0].orbit.raan_deg", "outside [0.0, 360.0)"),
        ("2020-01-01T00:00:00Z", "yesterday", "nodes[0].orbit.epoch", "not an ISO 8601 UTC time"),
        ("altitude_km: 500", "altitude_km: 50", "nodes[0].orbit.altitude_km", "outside [160.0, 40000.0]"),
        ("min_elevation_deg: 15", "min_elevation_deg: 90", "nodes[1].min_elevation_deg", "outside [0.0, 90.0)"),
        ("{ id: C, lat: 40.1, lon: 117.1, role: metro-core }", "{ id: C, lat: 40.1, lon: 117.1, altitude_m: 3, role: metro-core }",
         "nodes[2].altitude_m", "belongs to a ground station"),
        ("{ a: G, b: C, length_km: 20 }", "{ a: S, b: C, length_km: 20 }", "links[1]", "no fibre reaches satellite 'S'"),
        ("{ a: G, b: C, length_km: 20 }", "{ a: G, b: C, type: free-space, channel: { loss_table: x.csv } }", "links[1]",
         "joins a satellite and a ground station"),
        ("type: free-space,", "type: laser,", "links[0].type", "unknown link type 'laser'"),
        ("type: free-space,", "type: free-space, length_km: 600,", "links[0].length_km", "has no length"),
        ("pointing_jitter_urad: 2.5, ", "", "links[0].channel.pointing_jitter_urad", "missing required field"),
        ("pointing_jitter_urad: 2.5, ", "pointing_jitter_urad: 2.5, background_day_cps: -5, ", "links[0].channel.background_day_cps",
         "outside [0.0, 1000000000.0]"),
        ("min_elevation_deg: 15,", "min_elevation_deg: 15, night_only: sometimes,", "nodes[1].night_only", "must be true or false"),
        ("{ id: C, lat: 40.1, lon: 117.1, role: metro-core }", "{ id: C, lat: 40.1, lon: 117.1, night_only: true, role: metro-core }",
         "nodes[2].night_only", "belongs to a ground station"),
        ("channel: { receive", "channel: { loss_table: t.csv, receive", "links[0].channel.receive_aperture_m", "not both"),
        ("{ a: G, b: C, length_km: 20 }", "{ a: G, b: C, length_km: 20, channel: { loss_table: t.csv } }", "links[1].channel",
         "only a free-space link"),
    ])
    func malformedSatellitesStationsAndLinksAreRefusedByField(old: String, new: String, field: String, message: String) {
        let text: String
        if old.hasPrefix("orbit: { altitude_km: 500") {
            // The orbit line removed.
            text = Self.satelliteFixture.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("orbit:") }.joined(separator: "\n")
        } else {
            text = Self.satelliteFixture.replacingOccurrences(of: old, with: new)
        }
        #expect(text != Self.satelliteFixture)
        let errors = parseErrors(text)
        #expect(errors.contains { $0.field == field && $0.message.contains(message) }, "\(errors)")
    }

    @Test func aLossTableIsReadBesideTheTopologyAndItsErrorsNameFileAndLine() throws {
        let dir = NSTemporaryDirectory() + "qkdnet-sat-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = Self.satelliteFixture.replacingOccurrences(
            of: "channel: { receive_aperture_m: 1.0, divergence_urad: 10, pointing_jitter_urad: 2.5, zenith_transmittance: 0.7, optical_efficiency: 0.16 }",
            with: "channel: { loss_table: loss.csv }")
        try text.write(toFile: "\(dir)/sat.yaml", atomically: true, encoding: .utf8)
        func errors() -> [TopologyError] {
            do { _ = try TopologyParser.load(path: "\(dir)/sat.yaml"); return [] } catch { return error.errors }
        }
        #expect(errors().contains { $0.field == "links[0].channel.loss_table" && $0.message.contains("cannot read 'loss.csv'") })
        try "range_km,loss_db\n500,25\n600,oops\n".write(toFile: "\(dir)/loss.csv", atomically: true, encoding: .utf8)
        #expect(errors().contains { $0.message.contains("loss.csv:3: expected two numbers") }, "\(errors())")
        try "range_km,loss_db\n500,25\n1500,35\n".write(toFile: "\(dir)/loss.csv", atomically: true, encoding: .utf8)
        let t = try TopologyParser.load(path: "\(dir)/sat.yaml")
        guard case .freeSpace(.table(let table))? = t.link(named: "S-G")?.medium else { Issue.record("no table"); return }
        #expect(table.lossDb(rangeKm: 1000) == 30)
        // Parsed from text alone, a loss table cannot be read.
        #expect(parseErrors(text).contains { $0.field == "links[0].channel.loss_table" && $0.message.contains("TopologyParser.load") })
    }
}
