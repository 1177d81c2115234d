import Foundation
import QKDCore
import QKDLink
import QKDPhysics
import QKDPostProcessing
import QKDTopology
import Testing

/// The Micius pass of 2016-12-19 (micius-xinglong.yaml) emulated in-process: driven by the
/// measured track through the measured loss table, the same instances as a fibre link.
@Suite struct PassSimulationTests {
    static let topologies = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Topologies").path

    @Test func theMiciusPassDistilsAKeyWithTheQBERAndLossOfThePaper() throws {
        let topology = try TopologyParser.load(path: "\(Self.topologies)/micius-xinglong.yaml")
        let link = try #require(topology.link(named: "Micius-Xinglong"))
        guard case .freeSpace(let channel) = link.medium else { Issue.record("not free space"); return }
        let orbit = try #require(topology.node(NodeID("Micius"))?.orbit), site = try #require(topology.node(NodeID("Xinglong"))?.station)
        let track = try RangeTrack(csv: String(contentsOfFile: "\(Self.topologies)/micius2017/track.csv", encoding: .utf8))
        #expect(track.points.count == 2741 && track.durationSeconds == 274)
        let h = orbit.altitudeKm, s = site.altitudeMetres / 1000
        let geometry: PassSimulation.Geometry = { t in
            let r = track.rangeKm(at: t)
            return (r, LookAngles.elevation(altitudeKm: h, rangeKm: r, stationAltitudeKm: s))
        }
        let p = link.physics
        var configuration = BB84Configuration(pulsesPerFrame: UInt32(p.sourceRateHz / 10), source: link.distillation.source)
        configuration.darkCountProbability = p.darkCountProbability
        let outcome = try PassSimulation(configuration: configuration, distillation: link.distillation, detectorEfficiency: p.detectorEfficiency,
                                         misalignment: p.misalignment, sourceRateHz: p.sourceRateHz, channel: channel, seed: 19,
                                         secrecy: .secret).run(durationSeconds: track.durationSeconds, geometry: geometry)
        #expect(outcome.seconds.count == 274)
        // Closest approach: the table's 29.75 dB.
        let closest = try #require(outcome.seconds.min { $0.rangeKm < $1.rangeKm })
        #expect(abs(closest.lossDb - 29.75) < 0.1, "\(closest)")
        // The sifted rate peaks near closest approach and is several times the edges'.
        let peak = try #require(outcome.seconds.max { $0.siftedBits < $1.siftedBits })
        #expect(abs(peak.t - closest.t) < 40, "peak at \(peak.t) s, closest at \(closest.t) s")
        let middle = outcome.seconds.filter { abs($0.t - closest.t) < 10 }.map(\.siftedBits).reduce(0, +)
        let edge = outcome.seconds.prefix(20).map(\.siftedBits).reduce(0, +)
        #expect(middle > 4 * edge, "middle \(middle), first 20 s \(edge)")
        #expect(outcome.qber > 0.005 && outcome.qber < 0.02, "\(outcome.qber)")
        #expect(outcome.finalKeyBits > 0)
        #expect(outcome.keysMatch)
        print(String(format: "micius pass: %llu sifted signal bits, QBER %.2f %%, final key %llu bits, closest %.1f km at %.2f dB",
                     outcome.siftedBits, outcome.qber * 100, outcome.finalKeyBits, closest.rangeKm, closest.lossDb))
    }

    /// Jinan-1 over Stellenbosch by night and by day (jinan1-stellenbosch.yaml: 200 counts/s
    /// per detector of sky at night, 2·10^4 by day): the night pass distils, the day pass's
    /// background drowns the signal and the block yields no key.
    @Test func aPassByDayDrownsInSkyLightWhileOneByNightDistils() throws {
        let topology = try TopologyParser.load(path: "\(Self.topologies)/jinan1-stellenbosch.yaml")
        let link = try #require(topology.link(named: "Jinan-1-Stellenbosch"))
        guard case .freeSpace(let channel) = link.medium else { Issue.record("not free space"); return }
        let orbit = try #require(topology.node(NodeID("Jinan-1"))?.orbit), site = try #require(topology.node(NodeID("Stellenbosch"))?.station)
        // Every pass of the mission's day, those by day too (the station leaves them out: night_only).
        let mission = try #require(topology.mission)
        let passes = PassPredictor.passes(of: orbit, over: site, from: mission.start, to: mission.end)
        #expect(passes.count == 2 && site.nightOnly && site.uses(passes[0]) && !site.uses(passes[1]))
        let p = link.physics
        var configuration = BB84Configuration(pulsesPerFrame: UInt32(p.sourceRateHz / 10), source: link.distillation.source)
        configuration.darkCountProbability = p.darkCountProbability
        let simulation = PassSimulation(configuration: configuration, distillation: link.distillation, detectorEfficiency: p.detectorEfficiency,
                                        misalignment: p.misalignment, sourceRateHz: p.sourceRateHz, channel: channel, seed: 23, secrecy: .reproducible)
        var outcomes: [(sun: Double, final: UInt64, qber: Double)] = []
        for pass in passes {
            let start = pass.start, sky = link.background
            let outcome = try simulation.run(durationSeconds: pass.durationSeconds, geometry: { t in
                let look = site.look(at: orbit.earthFixedPosition(at: start + t))
                return (look.rangeKm, look.elevationDegrees)
            }, background: { t in sky.countsPerSecond(sunElevationDegrees: site.sunElevationDegrees(at: start + t)) })
            outcomes.append((site.sunElevationDegrees(at: pass.culmination), outcome.finalKeyBits, outcome.qber))
        }
        let night = outcomes[0], day = outcomes[1]
        #expect(night.sun < -18 && day.sun > 30, "\(outcomes)")
        #expect(night.final > 50_000 && night.qber < 0.05, "night: \(night)")
        #expect(day.final == 0 && day.qber > 0.25, "day: \(day)")
    }
}
