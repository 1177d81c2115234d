import Foundation
import QKDCore
import QKDTopology
import Testing

/// The repository's Topologies/ directory, found from this file's location.
let topologiesDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Topologies").path

let baseFixture = """
    name: fixture
    seed: 7
    defaults:
      loss_db_per_km: 0.2
    nodes:
      - { id: A, lat: 10.0, lon: 20.0, role: metro-core }
      - { id: B, lat: 10.5, lon: 20.5, role: trusted-relay }
      - { id: C, lat: 11.0, lon: 21.0, role: metro-core }
    links:
      - { a: A, b: B, length_km: 30 }
      - a: B
        b: C
        length_km: 40
        physics: { detector_efficiency: 0.6 }
    saes:
      - { id: SAE-A, node: A }
    """

func parseErrors(_ text: String) -> [TopologyError] {
    do {
        _ = try TopologyParser.parse(text, file: "fixture.yaml")
        return []
    } catch {
        return error.errors
    }
}

@Suite struct TopologyParserTests {
    @Test func everyShippedTopologyValidates() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: topologiesDirectory)
            .filter { $0.hasSuffix(".yaml") }.sorted()
        let required = ["beijing-shanghai.yaml", "china-16-cities.yaml", "line-3.yaml", "secoqc-vienna.yaml", "tokyo-qkd.yaml"]
        for name in required { #expect(files.contains(name), "missing Topologies/\(name)") }
        for file in files {
            let topology = try TopologyParser.load(path: "\(topologiesDirectory)/\(file)")
            #expect(!topology.nodes.isEmpty)
            // Every metro core has an SAE.
            for node in topology.nodes where node.role == .metroCore {
                #expect(topology.saes.contains { $0.node == node.id }, "\(file): no SAE at metro core \(node.id)")
            }
        }
    }

    @Test func backboneMatchesTheReferenceShape() throws {
        let t = try TopologyParser.load(path: "\(topologiesDirectory)/beijing-shanghai.yaml")
        #expect(t.nodes.count == 32)
        #expect(t.links.count == 31)
        let total = t.links.reduce(0) { $0 + $1.lengthKm }
        #expect(total > 1900 && total < 2100, "backbone fibre \(total) km")
        #expect(t.links.allSatisfy { $0.lengthKm <= 93.4 })
        // A line: every node but the two ends has exactly two links.
        let degrees = t.nodes.map { t.links(of: $0.id).count }
        #expect(degrees.filter { $0 == 1 }.count == 2)
        let line3 = try TopologyParser.load(path: "\(topologiesDirectory)/line-3.yaml")
        #expect(Set(line3.saes.map(\.node)) == Set(line3.nodes.map(\.id)))
    }

    @Test func meshHasEveryRelayAsANode() throws {
        let t = try TopologyParser.load(path: "\(topologiesDirectory)/china-16-cities.yaml")
        #expect(t.nodes.filter { $0.role == .metroCore }.count == 16)
        #expect(t.nodes.count == 105)
        #expect(t.links.count == 107)
        #expect(t.links.allSatisfy { $0.lengthKm <= 81 })
    }

    @Test func parsesFieldsDefaultsAndOverrides() throws {
        let t = try TopologyParser.parse(baseFixture, file: "fixture.yaml")
        #expect(t.name == "fixture")
        #expect(t.seed == 7)
        #expect(t.secrecy == .secret, "secret randomness unless the file asks for a reproducible run")
        let reproducible = try TopologyParser.parse(baseFixture.replacingOccurrences(of: "seed: 7", with: "seed: 7\nsecrecy: reproducible"),
                                                    file: "fixture.yaml")
        #expect(reproducible.secrecy == .reproducible && reproducible.with(secrecy: .secret).secrecy == .secret)
        #expect(t.nodes.map(\.id.rawValue) == ["A", "B", "C"])
        #expect(t.links[0].physics.detectorEfficiency == 0.10)
        #expect(t.links[1].physics.detectorEfficiency == 0.6)
        #expect(t.links[1].physics.lossDbPerKm == 0.2)
        #expect(t.link(named: "C-B")?.index == LinkIndex(1))
        #expect(t.link(named: "A-C") == nil)
        #expect(t.saes == [SAE(id: "SAE-A", node: NodeID("A"))])
        #expect(t.links[0].physics.blockPulses == nil, "blocks by key bits unless block_pulses is given")
        let byPulses = try TopologyParser.parse(baseFixture.replacingOccurrences(of: "{ detector_efficiency: 0.6 }",
                                                                                  with: "{ detector_efficiency: 0.6, block_pulses: 1.0e10 }"),
                                                file: "fixture.yaml")
        #expect(byPulses.links[1].physics.blockPulses == 10_000_000_000 && byPulses.links[0].physics.blockPulses == nil)
        #expect(t.kme == KMELimits() && t.kme.keyRetentionNs == 3_600_000_000_000, "the KME limits' defaults")
        let limited = try TopologyParser.parse(baseFixture.replacingOccurrences(
            of: "seed: 7", with: "seed: 7\nkme: { key_retention_s: 60, max_waiting_bits_per_pair: 4096, max_requests_per_sae: 2, max_requests: 5 }"),
            file: "fixture.yaml")
        #expect(limited.kme == KMELimits(keyRetentionSeconds: 60, maxWaitingBitsPerPair: 4096, maxRequestsPerSAE: 2, maxRequests: 5))
        #expect(limited.with(timeScale: 2).kme == limited.kme)
    }

    struct Mutation: CustomTestStringConvertible, Sendable {
        let name: String
        let from: String
        let to: String
        let code: TopologyError.Code
        let field: String
        let line: Int
        var testDescription: String { name }
    }

    static let mutations: [Mutation] = [
        Mutation(name: "unknown node in a link", from: "{ a: A, b: B, length_km: 30 }", to: "{ a: A, b: Z, length_km: 30 }",
                 code: .unknownNode, field: "links[0].b", line: 10),
        Mutation(name: "duplicate node id", from: "{ id: C, lat", to: "{ id: A, lat",
                 code: .duplicateID, field: "nodes[2].id", line: 8),
        Mutation(name: "self loop", from: "{ a: A, b: B, length_km: 30 }", to: "{ a: A, b: A, length_km: 30 }",
                 code: .selfLoop, field: "links[0]", line: 10),
        Mutation(name: "zero length", from: "length_km: 30", to: "length_km: 0",
                 code: .outOfRange, field: "links[0].length_km", line: 10),
        Mutation(name: "negative length", from: "length_km: 40", to: "length_km: -4",
                 code: .outOfRange, field: "links[1].length_km", line: 13),
        Mutation(name: "probability above 1", from: "detector_efficiency: 0.6", to: "detector_efficiency: 1.6",
                 code: .outOfRange, field: "links[1].physics.detector_efficiency", line: 14),
        Mutation(name: "negative loss", from: "loss_db_per_km: 0.2", to: "loss_db_per_km: -0.2",
                 code: .outOfRange, field: "defaults.loss_db_per_km", line: 4),
        Mutation(name: "typo in a key", from: "length_km: 40", to: "lenght_km: 40",
                 code: .unknownField, field: "links[1].lenght_km", line: 13),
        Mutation(name: "missing field", from: "{ id: B, lat: 10.5, lon: 20.5, role: trusted-relay }", to: "{ id: B, lat: 10.5, role: trusted-relay }",
                 code: .missingField, field: "nodes[1].lon", line: 7),
        Mutation(name: "wrong type", from: "lat: 11.0", to: "lat: north",
                 code: .wrongType, field: "nodes[2].lat", line: 8),
        Mutation(name: "unknown role", from: "role: trusted-relay", to: "role: repeater",
                 code: .invalidValue, field: "nodes[1].role", line: 7),
        Mutation(name: "duplicate link", from: "- a: B\n    b: C", to: "- a: B\n    b: A",
                 code: .duplicateLink, field: "links[1]", line: 11),
        Mutation(name: "latitude out of range", from: "lat: 10.0", to: "lat: 100.0",
                 code: .outOfRange, field: "nodes[0].lat", line: 6),
        Mutation(name: "bad seed", from: "seed: 7", to: "seed: -7",
                 code: .invalidValue, field: "seed", line: 2),
        Mutation(name: "bad secrecy", from: "seed: 7", to: "seed: 7\nsecrecy: public",
                 code: .invalidValue, field: "secrecy", line: 3),
        Mutation(name: "SAE on unknown node", from: "{ id: SAE-A, node: A }", to: "{ id: SAE-A, node: Q }",
                 code: .unknownNode, field: "saes[0].node", line: 16),
        Mutation(name: "KME retention not positive", from: "seed: 7", to: "seed: 7\nkme: { key_retention_s: 0 }",
                 code: .outOfRange, field: "kme.key_retention_s", line: 3),
        Mutation(name: "KME limit not an integer", from: "seed: 7", to: "seed: 7\nkme: { max_waiting_bits_per_pair: 2.5 }",
                 code: .outOfRange, field: "kme.max_waiting_bits_per_pair", line: 3),
        Mutation(name: "KME per-SAE above total", from: "seed: 7", to: "seed: 7\nkme: { max_requests_per_sae: 20, max_requests: 10 }",
                 code: .invalidValue, field: "kme.max_requests_per_sae", line: 3),
        Mutation(name: "KME typo", from: "seed: 7", to: "seed: 7\nkme: { max_request: 10 }",
                 code: .unknownField, field: "kme.max_request", line: 3),
        Mutation(name: "SAE named like a node", from: "{ id: SAE-A, node: A }", to: "{ id: B, node: A }",
                 code: .duplicateID, field: "saes[0].id", line: 16),
        Mutation(name: "bad endpoint", from: "{ id: A, lat: 10.0, lon: 20.0, role: metro-core }", to: "{ id: A, lat: 10.0, lon: 20.0, role: metro-core, endpoint: 'localhost:99999' }",
                 code: .invalidValue, field: "nodes[0].endpoint", line: 6),
        Mutation(name: "decoy above signal", from: "{ detector_efficiency: 0.6 }", to: "{ detector_efficiency: 0.6, decoy_intensity: 0.9 }",
                 code: .outOfRange, field: "links[1].physics.decoy_intensity", line: 14),
        Mutation(name: "negative block_pulses", from: "{ detector_efficiency: 0.6 }", to: "{ detector_efficiency: 0.6, block_pulses: -5 }",
                 code: .outOfRange, field: "links[1].physics.block_pulses", line: 14),
        Mutation(name: "probabilities not summing to 1", from: "{ detector_efficiency: 0.6 }", to: "{ detector_efficiency: 0.6, signal_probability: 0.9 }",
                 code: .invalidValue, field: "links[1].physics", line: 14),
        Mutation(name: "key stock to an unknown SAE", from: "{ id: SAE-A, node: A }", to: Self.stocks("{ master: SAE-A, slave: SAE-X, keys: 4 }"),
                 code: .unknownNode, field: "key_stocks[0].slave", line: 20),
        Mutation(name: "key stock within one node", from: "{ id: SAE-A, node: A }", to: Self.stocks("{ master: SAE-C, slave: SAE-C2, keys: 4 }"),
                 code: .invalidValue, field: "key_stocks[0].slave", line: 20),
        Mutation(name: "key stock of no keys", from: "{ id: SAE-A, node: A }", to: Self.stocks("{ master: SAE-A, slave: SAE-C, keys: 0 }"),
                 code: .outOfRange, field: "key_stocks[0].keys", line: 20),
        Mutation(name: "key stock of odd key size", from: "{ id: SAE-A, node: A }", to: Self.stocks("{ master: SAE-A, slave: SAE-C, keys: 4, key_size: 100 }"),
                 code: .outOfRange, field: "key_stocks[0].key_size", line: 20),
        Mutation(name: "key stock beyond what the slave may hold", from: "{ id: SAE-A, node: A }",
                 to: Self.stocks("{ master: SAE-A, slave: SAE-C, keys: 4096, key_size: 8192 }"),
                 code: .outOfRange, field: "key_stocks[0].keys", line: 20),
        Mutation(name: "key stock twice", from: "{ id: SAE-A, node: A }",
                 to: Self.stocks("{ master: SAE-A, slave: SAE-C, keys: 4 }\n  - { master: SAE-A, slave: SAE-C, keys: 8 }"),
                 code: .duplicateID, field: "key_stocks[1].slave", line: 21),
        Mutation(name: "unknown key policy of an SAE", from: "{ id: SAE-A, node: A }", to: "{ id: SAE-A, node: A, key_policy: quantum }",
                 code: .invalidValue, field: "saes[0].key_policy", line: 16),
        Mutation(name: "key policy of an unknown pair", from: "{ id: SAE-A, node: A }",
                 to: "{ id: SAE-A, node: A }\nkey_policies:\n  - { master: SAE-A, slave: SAE-Q, policy: hybrid }",
                 code: .unknownNode, field: "key_policies[0].slave", line: 18),
        Mutation(name: "multipath over one path", from: "{ id: SAE-A, node: A }",
                 to: Self.stocks("{ master: SAE-A, slave: SAE-C, keys: 4 }").replacingOccurrences(of: "key_stocks:\n  - { master: SAE-A, slave: SAE-C, keys: 4 }",
                                                                                                  with: "key_policies:\n  - { master: SAE-A, slave: SAE-C, policy: multipath(1) }"),
                 code: .invalidValue, field: "key_policies[0].policy", line: 20),
    ]

    /// The fixture's SAEs with two more at C, and `key_stocks` holding `entries`.
    static func stocks(_ entries: String) -> String {
        "{ id: SAE-A, node: A }\n  - { id: SAE-C, node: C }\n  - { id: SAE-C2, node: C }\nkey_stocks:\n  - \(entries)"
    }

    @Test(arguments: mutations)
    func mutatedFixtureReportsFileLineAndField(_ m: Mutation) {
        #expect(baseFixture.contains(m.from), "fixture text for \(m.name) not found")
        let errors = parseErrors(baseFixture.replacingOccurrences(of: m.from, with: m.to))
        let match = errors.first { $0.code == m.code && $0.field == m.field }
        #expect(match != nil, "\(m.name): got \(errors)")
        #expect(match?.line == m.line, "\(m.name): got line \(match?.line ?? -1)")
        #expect(match?.file == "fixture.yaml")
        #expect(match?.description.hasPrefix("fixture.yaml:\(m.line):") == true)
    }

    @Test func keyStocksListPairsOfSAEsAtDifferentNodes() throws {
        let text = baseFixture.replacingOccurrences(of: "{ id: SAE-A, node: A }",
                                                    with: Self.stocks("{ master: SAE-A, slave: SAE-C, keys: 12, key_size: 512 }"))
        let t = try TopologyParser.parse(text, file: "fixture.yaml")
        #expect(t.keyStocks == [KeyStock(master: "SAE-A", slave: "SAE-C", keys: 12, keySize: 512)])
        #expect(t.keyStock(master: "SAE-A", slave: "SAE-C")?.keys == 12)
        #expect(t.keyStock(master: "SAE-C", slave: "SAE-A") == nil, "a stock has a direction")
        #expect(t.with(timeScale: 3).keyStocks == t.keyStocks)
        let plain = try TopologyParser.parse(baseFixture, file: "fixture.yaml")
        #expect(plain.keyStocks.isEmpty)
    }

    @Test func keyPoliciesComeFromThePairThenTheMasterThenQKD() throws {
        let text = baseFixture.replacingOccurrences(of: "{ id: SAE-A, node: A }", with: """
            { id: SAE-A, node: A, key_policy: hybrid }
              - { id: SAE-C, node: C }
              - { id: SAE-C2, node: C }
            key_policies:
              - { master: SAE-A, slave: SAE-C2, policy: multipath(3) }
            """)
        let t = try TopologyParser.parse(text, file: "fixture.yaml")
        #expect(t.keyPolicy(master: "SAE-A", slave: "SAE-C") == .hybrid)
        #expect(t.keyPolicy(master: "SAE-A", slave: "SAE-C2") == .multipath(3))
        #expect(t.keyPolicy(master: "SAE-C", slave: "SAE-A") == .qkd)
        #expect(t.with(timeScale: 2).keyPolicies == t.keyPolicies)
    }

    @Test func typoGetsASuggestion() {
        let errors = parseErrors(baseFixture.replacingOccurrences(of: "length_km: 40", with: "lenght_km: 40"))
        #expect(errors.contains { $0.message.contains("did you mean 'length_km'") })
    }

    @Test func syntaxErrorNamesTheLine() {
        let errors = parseErrors("name: x\nnodes: [\n  { id: A\n")
        #expect(errors.count == 1)
        #expect(errors.first?.code == .syntax)
        #expect(errors.first?.line != nil)
    }

    @Test func collectsSeveralErrorsAtOnce() {
        let text = baseFixture
            .replacingOccurrences(of: "length_km: 30", with: "length_km: 0")
            .replacingOccurrences(of: "role: trusted-relay", with: "role: nope")
        #expect(parseErrors(text).count >= 2)
    }

    @Test func unreadableFileIsNamed() {
        do {
            _ = try TopologyParser.load(path: "/nonexistent/net.yaml")
            Issue.record("loading a missing file succeeded")
        } catch {
            #expect(error.errors.first?.code == .unreadable)
            #expect(error.description.contains("/nonexistent/net.yaml"))
        }
    }
}
