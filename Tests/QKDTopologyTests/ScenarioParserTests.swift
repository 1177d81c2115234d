import Foundation
import QKDCore
import QKDTopology
import Testing

/// Scenario files: parsed against their topology, every problem named by file, line and field.
@Suite struct ScenarioParserTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let attacks = ["intercept-resend", "pns", "beam-splitting", "classical-tamper"]

    static func parse(_ text: String) throws(TopologyValidationError) -> Scenario {
        try ScenarioParser.parse(text, file: "s.yaml", directory: "\(repository)/Topologies/scenarios", attacks: attacks) {
            path throws(TopologyValidationError) in try TopologyParser.load(path: path)
        }.0
    }

    @Test func shippedScenariosParse() throws {
        let dir = "\(Self.repository)/Topologies/scenarios"
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 3)
        for file in files {
            let (scenario, topology) = try ScenarioParser.load(path: "\(dir)/\(file)", attacks: Self.attacks)
            #expect(!scenario.events.isEmpty && !scenario.relays.isEmpty, "\(file)")
            #expect(scenario.events.map(\.atSeconds) == scenario.events.map(\.atSeconds).sorted(), "\(file): events in time order")
            #expect(scenario.events.last?.action == .heal(link: nil), "\(file) ends healed")
            #expect(topology.nodes.count >= 3)
        }
    }

    @Test func aTimelineParsesInTimeOrder() throws {
        let s = try Self.parse("""
            name: t
            topology: ../line-3.yaml
            duration_s: 20
            relays: [{ from: Alice, to: Bob }]
            events:
              - { at_s: 9, action: heal }
              - { at_s: 2, action: eve, link: Alice-Relay, attack: pns, at_km: 3 }
              - { at_s: 5, action: partition, nodes: [Alice] }
              - { at_s: 6, action: loss, link: Relay-Bob, db: 3 }
            """)
        #expect(s.events.map(\.atSeconds) == [2, 5, 6, 9])
        #expect(s.timeScale == nil, "no time_scale: the topology's")
        let slow = try Self.parse("name: t\ntopology: ../line-3.yaml\nduration_s: 20\ntime_scale: 0.05\nevents: []\n")
        #expect(slow.timeScale == 0.05)
        #expect(s.events[0].action == .eve(link: "Alice-Relay", attack: "pns", fraction: 1, atKm: 3))
        #expect(s.events[1].action == .partition(nodes: [NodeID("Alice")]))
        #expect(s.relays == [.init(from: NodeID("Alice"), to: NodeID("Bob"), everySeconds: 2, bits: 256)])
        #expect(s.sampleEverySeconds == 2 && s.durationSeconds == 20)
    }

    @Test(arguments: [
        ("events:\n  - { at_s: 2, action: eve, link: Alice-Nowhere, attack: pns }", "events[0].link", 6),
        ("events:\n  - { at_s: 2, action: eve, link: Alice-Relay, attack: laser-blinding }", "events[0].attack", 6),
        ("events:\n  - { at_s: 2, action: explode }", "events[0].action", 6),
        ("events:\n  - { at_s: 99, action: heal }", "events[0].at_s", 6),
        ("events:\n  - { at_s: 2, action: kill, node: Carol }", "events[0].node", 6),
        ("events:\n  - { at_s: 2, action: loss, link: Alice-Relay }", "events[0].db", 6),
        ("relays:\n  - { from: Alice, to: Alice }", "relays[0]", 6),
        ("events:\n  - { at_s: 2, action: heal, when: now }", "events[0].when", 6),
        ("time_scale: 0\nevents: []", "time_scale", 5),
        ("time_scale: 2000000\nevents: []", "time_scale", 5),
    ] as [(String, String, Int)])
    func badInputNamesTheLineAndField(tail: String, field: String, line: Int) {
        let text = "name: bad\ntopology: ../line-3.yaml\nduration_s: 30\nsample_every_s: 1\n" + tail
        do {
            _ = try Self.parse(text)
            Issue.record("accepted: \(tail)")
        } catch {
            #expect(error.errors.contains { $0.field == field && $0.line == line && $0.file == "s.yaml" }, "\(error)")
        }
    }

    @Test func aMissingTopologyIsNamed() {
        do {
            _ = try Self.parse("name: x\ntopology: ../nope.yaml\nduration_s: 5\n")
            Issue.record("accepted a missing topology")
        } catch {
            #expect(error.errors.first?.field == "topology" && error.errors.first?.line == 2, "\(error)")
            #expect(error.description.contains("nope.yaml"))
        }
    }
}
