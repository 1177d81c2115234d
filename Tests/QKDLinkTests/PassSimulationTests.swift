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
}
