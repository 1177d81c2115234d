import Foundation
import QKDCore
import QKDNode
import QKDTestKit
import QKDTopology
import Testing

/// Micius as a trusted relay between passes, on a manual clock: keys made with Xinglong wait in
/// the satellite's pool through the gap and the passes over Nanshan; once a pass over Graz
/// yields keys, the stock of SAE-Xinglong -> SAE-Graz fills by relay, and enc_keys draws from it
/// at once.
@Suite struct DeterministicStoreAndForwardTests {
    static func spare(_ net: DeterministicNetwork, _ node: String, _ link: TopologyLink) -> Int {
        net.node(node)?.pools.level(link.name)?.spareKeys ?? -1
    }

    @Test func aKeyFromXinglongToGrazComesFromTheStockOnlyAfterAPassOverGraz() throws {
        let topology = try TopologyParser.load(path: "\(DeterministicSatelliteTests.topologies)/micius-china-europe.yaml")
        let net = try DeterministicNetwork(topology: topology, composable: true)
        defer { net.stop() }
        let timeline = try #require(topology.missionTimeline)
        let xinglong = try #require(topology.link(named: "Micius-Xinglong")), graz = try #require(topology.link(named: "Micius-Graz"))
        let overGraz = timeline.passes(of: graz.index)
        let stock = try #require(topology.keyStock(master: "SAE-Xinglong", slave: "SAE-Graz"))
        let pair = NodePools.SAEPair(master: stock.master, slave: stock.slave)
        let xinglongKME = NodeKeyServiceTests.routes(net, "Xinglong"), grazKME = NodeKeyServiceTests.routes(net, "Graz")
        let enc = "/api/v1/keys/SAE-Graz/enc_keys", status = "/api/v1/keys/SAE-Graz/status"

        // Just before the first pass over Graz: the Xinglong pass's keys wait at the satellite,
        // the Graz link has its authentication reserve only, and the stock is empty.
        let firstGraz = try #require(overGraz.first)
        net.run(seconds: timeline.wall(atUTC: firstGraz.start) - 0.5)
        #expect(Self.spare(net, "Micius", xinglong) > stock.keys, "Micius holds no key from the Xinglong pass")
        #expect(Self.spare(net, "Micius", graz) == 0)
        let early = try #require(net.kme("Xinglong") {
            [await xinglongKME.get(status, as: "SAE-Xinglong"), await xinglongKME.get(enc + "?number=2", as: "SAE-Xinglong")]
        })
        #expect(early[0].status == 200 && early[0].json?["stored_key_count"] as? Int == 0, "\(early[0])")
        #expect(early[0].json?["max_key_count"] as? Int == stock.keys, "\(early[0])")
        #expect(early[1].status == 503, "\(early[1])")
        #expect(early[1].message.contains("holds 0 of the 2 keys asked"), "\(early[1])")

        // Through the passes over Graz: the stock fills by relay through the satellite.
        let end = timeline.wall(atUTC: overGraz.last!.end) + 30
        let filled = net.run(seconds: end - timeline.wall(atUTC: firstGraz.start) + 0.5) {
            net.node("Xinglong")!.pools.stocked(pair) == stock.keys
        }
        #expect(filled, "the stock holds \(net.node("Xinglong")!.pools.stocked(pair)) of \(stock.keys) keys after the Graz passes")
        let late = try #require(net.kme("Xinglong") {
            [await xinglongKME.get(status, as: "SAE-Xinglong"), await xinglongKME.get(enc + "?number=4", as: "SAE-Xinglong")]
        })
        #expect(late[0].json?["stored_key_count"] as? Int == stock.keys, "\(late[0])")
        #expect(late[1].status == 200 && late[1].keys.count == 4, "\(late[1])")
        #expect(net.node("Xinglong")!.pools.stocked(pair) == stock.keys - 4)
        // Graz holds them for its SAE, relayed through the satellite.
        let shown = net.control(.relayShow(keyID: late[1].keys[0].id, salt: nil), to: "Graz")?.relay
        #expect(shown?.path == ["Xinglong", "Micius", "Graz"], "\(String(describing: shown))")
        let ids = late[1].keys.map { "{\"key_ID\": \"\($0.id)\"}" }.joined(separator: ",")
        let dec = try #require(net.kme("Graz") {
            await grazKME.post("/api/v1/keys/SAE-Xinglong/dec_keys", as: "SAE-Graz", "{\"key_IDs\": [\(ids)]}")
        })
        #expect(dec.status == 200, "\(dec)")
        #expect(dec.keys.map(\.id) == late[1].keys.map(\.id))
        #expect(dec.keys.map(\.bytes) == late[1].keys.map(\.bytes), "Graz got other bits than Xinglong")
        #expect(Set(late[1].keys.map(\.bytes)).count == 4)
    }
}
