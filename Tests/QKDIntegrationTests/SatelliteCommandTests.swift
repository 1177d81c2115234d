import Foundation
import QKDLaunch
import Testing

/// `qkdctl passes` and `qkdctl sim pass` as a user runs them: the JSON fields other tools read,
/// and the orbit-driven and track-driven Micius passes agreeing.
@Suite struct SatelliteCommandTests {
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let dir = Harness.runDirectory("satcmd")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pid = try Processes.spawn(executable: "\(Harness.binDirectory)/qkdctl", arguments: arguments, outputPath: "\(dir)/out")
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return (status, try String(contentsOfFile: "\(dir)/out", encoding: .utf8))
    }

    static let topology = "\(Harness.repository)/Topologies/micius-xinglong.yaml"

    @Test func simPassReportsEverySecondAndThePassInTheIssuesFields() throws {
        var results: [[String: Any]] = []
        for extra in [[], ["--track", "\(Harness.repository)/Topologies/micius2017/track.csv"]] {
            let (status, output) = try Self.run(["sim", "pass", "--topology", Self.topology, "--satellite", "Micius", "--station", "Xinglong", "--json"] + extra)
            #expect(status == 0, "\(output)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
            let seconds = try #require(json["seconds"] as? [[String: Any]])
            #expect(seconds.count >= 270)
            for key in ["t", "range_km", "elevation_deg", "loss_db", "sifted_bits", "qber"] { #expect(seconds[0][key] is NSNumber, "seconds[].\(key)") }
            for key in ["sifted_bits", "final_key_bits", "qber", "eps_sec", "eps_cor"] { #expect(json[key] is NSNumber, "\(key)") }
            #expect(json["keys_identical_at_both_ends"] as? Bool == true)
            results.append(json)
        }
        // The orbit's pass and the measured track: the same key within 10 %.
        let sifted = results.map { ($0["sifted_bits"] as? NSNumber)?.doubleValue ?? 0 }
        #expect(sifted[0] > 1e6 && abs(sifted[0] / sifted[1] - 1) < 0.1, "\(sifted)")
        #expect(results.map { $0["driven"] as? String } == ["orbit", "track"])
    }

    @Test func passesListsMiciusOverXinglongAndRefusesATopologyWithoutSatellites() throws {
        let (status, output) = try Self.run(["passes", "--topology", Self.topology, "--hours", "24", "--json"])
        #expect(status == 0, "\(output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: [[String: Any]]])
        let first = try #require(json["passes"]?.first)
        #expect(first["start"] as? String == "2016-12-18T16:50:00Z")
        #expect(abs(((first["min_range_km"] as? NSNumber)?.doubleValue ?? 0) - 645) < 2)
        let refused = try Self.run(["passes", "--topology", "\(Harness.repository)/Topologies/line-3.yaml"])
        #expect(refused.status != 0 && refused.output.contains("passes need a satellite"), "\(refused.output)")
    }
}
