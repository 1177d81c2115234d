import Foundation
import QKDCore
import QKDLaunch
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// Satellite networks as real processes: the free-space link's source follows the mission's
/// emulated time, which every node takes from the same origin (`qkdctl up`), and skips the
/// stretch before the pass.
@Suite(.serialized) struct SatelliteNetworkTests {
    /// Micius over Xinglong, the pass played ten times faster than real time (27 s of wall), in
    /// a mission of one hour that holds that pass only.
    @Test func aMiciusPassOverXinglongPutsTheSameKeysInBothPools() throws {
        let path = Harness.variant(of: "micius-xinglong.yaml", label: "fast",
                                   replacing: ["time_scale: 1.0": "time_scale: 10\nmission: { hours: 1 }"])
        // The variant sits elsewhere: the loss table it names goes beside it.
        let tables = Harness.variantDirectory + "/micius2017"
        try? FileManager.default.createDirectory(atPath: tables, withIntermediateDirectories: true)
        try? FileManager.default.copyItem(atPath: "\(Harness.repository)/Topologies/micius2017/link-loss.csv", toPath: "\(tables)/link-loss.csv")
        let topology = try TopologyParser.load(path: path)
        let timeline = try #require(topology.missionTimeline)
        #expect(timeline.passes.count == 1)
        let pass = try #require(timeline.passes.first?.pass)
        let network = try Network.up(topologyPath: path, runDir: Harness.runDirectory("micius"), binDirectory: Harness.binDirectory)
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // Before the pass: in the skipped gap or just into the pass, nothing distilled yet.
        let early = try #require(network.pools().links.first)
        #expect(early.ends.count == 2)
        #expect(early.generatedBitsTotal == 0)
        // The mission plays the gap in 2 s and the 273 s pass in 27 s; the block distils after
        // it. 120 s: four times that.
        #expect(eventually(within: 120) { (network.pools().links.first?.ends.allSatisfy { $0.generatedBitsTotal > 0 }) ?? false },
                "no key from the pass: \(network.pools().links)")
        let link = try #require(network.pools().links.first)
        for end in link.ends {
            let f = try #require(end.freeSpace)
            #expect(f.satellite == "Micius" && f.station == "Xinglong")
            #expect(f.passesCompleted >= 1)
            // Emulated time is past the pass's end, and reported beside the wall.
            #expect(f.emulatedUTC >= pass.end)
            #expect(end.blocks == 1, "\(end.role): \(end.blocks) blocks from one pass")
        }
        let alice = try #require(link.ends.first { $0.role == "alice" })
        // The whole pass was emitted: 0.1 s frames.
        #expect(abs(Double(alice.framesSent) - (pass.durationSeconds / 0.1).rounded(.up)) <= 1, "\(alice.framesSent) frames")
        // `qkdctl status` shows the satellite: emulated time, the pass done, its key.
        let (code, shown) = try Harness.command("\(Harness.binDirectory)/qkdctl", ["status", "--run-dir", network.layout.root],
                                                scratch: network.layout.root)
        let row = shown.split(separator: "\n").first { $0.hasPrefix("Micius") && $0.contains("Xinglong") }.map(String.init) ?? ""
        #expect(code == 0 && row.contains(" 1/1 ") && row.contains("\(alice.finalBitsTotal) bits") && row.contains("2016-12-18T"),
                "qkdctl status: \(shown)")
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
        print("micius on the network: \(alice.framesSent) frames, final \(alice.finalBitsTotal) bits, QBER \(link.qber ?? -1)")
        passed = audit.ok
    }

    /// Store and forward on `micius-china-europe.yaml`, as shipped (time scale 10): keys made
    /// with Xinglong wait in Micius's pool; Micius is killed (-9) and restarted between its pass
    /// over Xinglong and those over Graz and loses nothing; the key stock of SAE-Xinglong ->
    /// SAE-Graz stays empty until a pass over Graz yields keys, then fills by relay through the
    /// satellite, and enc_keys at Xinglong and dec_keys at Graz give the same bits.
    @Test func miciusCarriesKeysFromXinglongToGrazAcrossAKillBetweenPasses() throws {
        let path = "\(Harness.repository)/Topologies/micius-china-europe.yaml"
        let topology = try TopologyParser.load(path: path)
        let timeline = try #require(topology.missionTimeline)
        let stock = try #require(topology.keyStock(master: "SAE-Xinglong", slave: "SAE-Graz"))
        let grazPasses = timeline.passes(of: try #require(topology.link(named: "Micius-Graz")).index)
        let network = try Network.up(topologyPath: path, runDir: Harness.runDirectory("micius-europe"), binDirectory: Harness.binDirectory)
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        func ends(_ link: String) -> [QuantumLinkReport] { network.pools().links.first { $0.link == link }?.ends ?? [] }
        // The Xinglong pass: 2 s of skipped gap, 27 s of pass, then its block; 120 s bound it.
        #expect(eventually(within: 120) { let e = ends("Micius-Xinglong"); return e.count == 2 && e.allSatisfy { $0.generatedBitsTotal > 0 } },
                "no key from the Xinglong pass: \(ends("Micius-Xinglong"))")

        // kill -9 of the satellite between the passes, and a restart on the same mission clock.
        let micius = NodeID("Micius")
        let old = try #require(network.recordedPID(micius))
        kill(old, SIGKILL)
        Processes.waitUntilGone([old], seconds: 5)
        try network.waitReady([micius: try network.startNode(micius)], timeoutSeconds: 30)
        #expect(eventually(within: 30) { network.pools().links.allSatisfy { $0.state == .up } })
        let afterKill = network.audit()
        #expect(afterKill.ok, "\(afterKill)")

        // Before any pass over Graz has ended: no stock, enc_keys refused (503, the stock named).
        let api = try KeyDeliveryTests.Client(network)
        let status = try api.call("Xinglong", "/api/v1/keys/SAE-Graz/status", as: "SAE-Xinglong")
        let early = try api.call("Xinglong", "/api/v1/keys/SAE-Graz/enc_keys?number=2", as: "SAE-Xinglong")
        let grazEnds = ends("Micius-Graz")
        #expect(grazEnds.count == 2 && grazEnds.allSatisfy { ($0.freeSpace?.passesCompleted ?? 1) == 0 },
                "the kill was not between the passes: \(grazEnds.map { $0.freeSpace as Any })")
        #expect(status.status == 200 && status.json?["stored_key_count"] as? Int == 0 && status.json?["max_key_count"] as? Int == stock.keys,
                "\(status)")
        #expect(early.status == 503 && early.body.contains("key stock"), "\(early)")

        // The passes over Graz: the stock fills once one of them yields keys. The last one ends
        // at this wall offset of the mission; its block and the relay follow within seconds.
        let lastEnd = timeline.wall(atUTC: try #require(grazPasses.last).end)
        let filled = eventually(within: lastEnd + 120) {
            (try? api.call("Xinglong", "/api/v1/keys/SAE-Graz/status", as: "SAE-Xinglong"))?.json?["stored_key_count"] as? Int == stock.keys
        }
        #expect(filled, "the stock did not fill: \(ends("Micius-Graz"))")
        let keys = try api.call("Xinglong", "/api/v1/keys/SAE-Graz/enc_keys?number=2", as: "SAE-Xinglong")
        #expect(keys.status == 200 && keys.keys.count == 2 && keys.keys.allSatisfy { $0.key.count == 32 }, "\(keys)")
        let ids = keys.keys.map { #"{"key_ID":"\#($0.id)"}"# }.joined(separator: ",")
        let collected = try api.call("Graz", "/api/v1/keys/SAE-Xinglong/dec_keys", as: "SAE-Graz", body: #"{"key_IDs":[\#(ids)]}"#)
        #expect(collected.status == 200 && collected.keys.map(\.key) == keys.keys.map(\.key), "\(collected)")
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
        let graz = ends("Micius-Graz").first { $0.role == "alice" }
        print("micius china-europe: Graz passes completed \(graz?.freeSpace?.passesCompleted ?? -1), Micius-Graz final \(graz?.finalBitsTotal ?? 0) bits, stock \(stock.keys) keys")
        passed = audit.ok && collected.status == 200
    }

    /// The Jinan-1 story as a user runs it (`make photos` is `qkdctl photos`): the satellite
    /// network starts, SAE-Jinan seals both shipped photos with keys from its stock for
    /// SAE-Stellenbosch (one-time pad, one-time HMAC key), which fills only once passes over
    /// Jinan and Stellenbosch have made key; Stellenbosch opens them bit-exact; the network stops.
    @Test func twoPhotosCrossJinan1BitExactWithKeysRelayedThroughTheSatellite() throws {
        let runDir = Harness.runDirectory("photos"), out = runDir + "-out"
        defer {
            // qkdctl stops its network itself; this covers a qkdctl that died.
            if let left = try? Network.open(runDir: runDir) { _ = left.down() }
            try? FileManager.default.removeItem(atPath: runDir)
            try? FileManager.default.removeItem(atPath: out)
        }
        let photos = ["jinan.png", "stellenbosch.png"].map { "\(Harness.repository)/docs/photos/\($0)" }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let (status, output) = try Harness.command("\(Harness.binDirectory)/qkdctl",
                                                   ["photos", "--topology", "\(Harness.repository)/Topologies/jinan1-stellenbosch.yaml",
                                                    "--run-dir", runDir, "--out", out, "--wait", "600", "--json"] + photos, scratch: out)
        #expect(status == 0, "qkdctl photos: \(output)")
        let json = output.firstIndex(of: "{").map { String(output[$0...]) } ?? ""
        let report = try #require(try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "\(output)")
        #expect(report["ok"] as? Bool == true, "\(report)")
        let entries = report["photos"] as? [[String: Any]] ?? []
        #expect(entries.count == 2)
        var bits = 0
        for (path, entry) in zip(photos, entries) {
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            let arrived = FileManager.default.contents(atPath: "\(out)/received/\(URL(fileURLWithPath: path).lastPathComponent)")
            #expect(arrived == original, "\(path) did not arrive bit-exact")
            // One 256-bit key per 32 bytes of photo, and one for the MAC.
            #expect(entry["keys"] as? Int == (original.count + 31) / 32 + 1, "\(entry)")
            bits += entry["key_bits"] as? Int ?? 0
        }
        #expect(report["key_bits_consumed"] as? Int == bits)
        // Keys to Stellenbosch exist only after a pass over it (and one over Jinan) made them.
        #expect((report["passes_waited"] as? Int ?? 0) >= 2, "\(report)")
        let mailbox = try FileManager.default.contentsOfDirectory(atPath: out + "/mailbox")
        #expect(mailbox.sorted() == ["jinan.png.envelope.json", "stellenbosch.png.envelope.json"])
        print("photos over jinan-1: \(bits) key bits, \(report["passes_waited"] ?? "?") passes waited, \(report["wall_seconds"] ?? "?") s wall")
    }
}
