import QKDTestKit
import Foundation
import QKDCore
import QKDLaunch
import QKDWire
import Testing

/// Faults injected into a running line-3 (`qkdctl fault ...`): each takes effect, shows in
/// status, and `heal` brings every link back up with pools growing again.
@Suite(.serialized) struct FaultTests {
    static func linkState(_ network: Network, _ node: String, _ link: String) -> (state: LinkState, faults: [String])? {
        guard let l = Harness.report(network, node)?.links.first(where: { $0.id == link }) else { return nil }
        return (l.state, l.faults ?? [])
    }

    static func pool(_ network: Network, _ link: String) -> PoolsStatus.Link? {
        network.pools().links.first { $0.link == link }
    }

    /// After a full heal: every link up at both ends with no fault, and every pool grows.
    static func expectHealedAndGrowing(_ network: Network) {
        // 30 s: the healed links come up on their next heartbeats; restarted nodes read their stores first.
        #expect(eventually(within: 30) {
            network.topology.links.allSatisfy { link in
                [link.a, link.b].allSatisfy { FaultTests.linkState(network, $0.rawValue, link.name).map { $0.state == .up && $0.faults.isEmpty } ?? false }
            }
        }, "every link back up after heal")
        let before = Dictionary(uniqueKeysWithValues: network.pools().links.map { ($0.link, $0.generatedBitsTotal) })
        // 60 s: a block on every link (a few seconds each on 25 km) after the pools agree again.
        #expect(eventually(within: 60) { network.pools().links.allSatisfy { $0.generatedBitsTotal > before[$0.link] ?? 0 } },
                "every pool grows again after heal")
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
    }

    @Test func aCutLinkGoesDownRelaysFindNoPathAndHealBringsItBack() throws {
        let network = try Harness.up("line-3.yaml", label: "fault-cut")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // 30 s: both links have keys beyond their reserve (their first blocks) and routing has heard of them.
        #expect(eventually(within: 30) { (try? network.routes(from: NodeID("Alice"), to: NodeID("Bob")).get().path) != nil })
        _ = try network.fault(.cut(link: "Alice-Relay")).get()
        // 15 s: down after 1 s of silence at both ends; the rest is room for a loaded machine.
        #expect(eventually(within: 15) {
            FaultTests.linkState(network, "Alice", "Alice-Relay")?.state == .down && FaultTests.linkState(network, "Relay", "Alice-Relay")?.state == .down
        }, "both ends see the cut")
        #expect(FaultTests.linkState(network, "Alice", "Alice-Relay")?.faults == ["cut"])
        #expect(network.status().links.first { $0.id == "Alice-Relay" }?.faults == ["cut"], "qkdctl status shows the fault")
        #expect(FaultTests.linkState(network, "Relay", "Relay-Bob")?.state == .up, "the other link is untouched")
        // Routing learns it; relays between the two sides fail cleanly.
        // 15 s: the ends advertise the cut as soon as they see it (1 s of silence).
        #expect(eventually(within: 15) { (try? network.routes(from: NodeID("Bob"), to: NodeID("Alice")).get().path) == nil })
        guard case .failure(let none) = network.relay(from: NodeID("Alice"), to: NodeID("Bob")) else { Issue.record("relay across a cut"); return }
        #expect(none.message.contains("no usable path"))
        _ = try network.heal().get()
        FaultTests.expectHealedAndGrowing(network)
        // 15 s: the healed link is advertised up at once; its pools already grew (checked above).
        #expect(eventually(within: 15) { (try? network.routes(from: NodeID("Alice"), to: NodeID("Bob")).get().path) != nil })
        #expect(try network.relay(from: NodeID("Alice"), to: NodeID("Bob")).get().ok)
        passed = true
    }

    @Test func lossDelayPartitionAndKillEachTakeEffectAndHealUndoesThemAll() throws {
        let network = try Harness.up("line-3.yaml", label: "fault-kinds")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // Loss: 10 dB more on Relay-Bob divides its measured gain by about ten.
        #expect(eventually(within: 30) { (FaultTests.pool(network, "Relay-Bob")?.gain ?? 0) > 0 })
        let gain = try #require(FaultTests.pool(network, "Relay-Bob")?.gain)
        _ = try network.fault(.loss(link: "Relay-Bob", decibels: 10)).get()
        #expect(FaultTests.linkState(network, "Bob", "Relay-Bob")?.faults == ["loss 10.0 dB"])
        var lossy = gain
        // 60 s: the next block's estimates, measured on frames thinned by the loss (a block: a few seconds).
        #expect(eventually(within: 60) { lossy = FaultTests.pool(network, "Relay-Bob")?.gain ?? gain; return lossy < gain / 5 },
                "gain \(gain) → \(lossy)")
        #expect(lossy > gain / 20, "about 10 dB: \(gain) → \(lossy)")
        #expect(FaultTests.linkState(network, "Relay", "Relay-Bob")?.state == .up, "a lossy link stays up")

        // Delay: 25 ms each way adds 50 ms to a round trip.
        _ = try network.fault(.delay(link: "Alice-Relay", milliseconds: 25)).get()
        let slow = try network.ping(link: "Alice-Relay", count: 5).get()
        #expect(slow.roundTripsMicroseconds.count == 5 && slow.roundTripsMicroseconds.allSatisfy { $0 >= 50_000 }, "\(slow)")

        // Partition: Alice alone; her classical channel goes, so her link goes down.
        #expect(try network.partition([NodeID("Alice")]).get() == ["Alice-Relay"])
        // 15 s: the partitioned link goes down after 1 s without a heartbeat.
        #expect(eventually(within: 15) { FaultTests.linkState(network, "Relay", "Alice-Relay")?.state == .down })
        #expect(FaultTests.linkState(network, "Alice", "Alice-Relay")?.faults.contains("partitioned") == true)

        // Kill: Bob dies; heal starts him again.
        let bob = try #require(network.recordedPID(NodeID("Bob")))
        kill(bob, SIGKILL)
        Processes.waitUntilGone([bob], seconds: 5)
        // 15 s: the dead node's link goes down after 1 s of silence.
        #expect(eventually(within: 15) { FaultTests.linkState(network, "Relay", "Relay-Bob")?.state == .down })

        let healed = try network.heal().get()
        #expect(healed.contains(NodeID("Bob")))
        FaultTests.expectHealedAndGrowing(network)
        let fast = try network.ping(link: "Alice-Relay", count: 5).get()
        #expect((fast.roundTripsMicroseconds.min() ?? .infinity) < 25_000, "the delay is gone: \(fast)")
        passed = true
    }
}
