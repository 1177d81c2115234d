import Foundation
import QKDCore
import QKDLaunch
import QKDWire
import Testing

/// Key relay across the trusted relay of line-3, with real node processes.
@Suite(.serialized) struct RelayTests {
    @Test func aRelayedKeyIsTheSameAtBothEndsAndAKilledRelayStopsRelays() throws {
        let network = try Harness.up("line-3.yaml", label: "relay")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let alice = NodeID("Alice"), bob = NodeID("Bob")
        // Routing learns the links (and their keys) within a few advertisements.
        #expect(eventually(within: 30) { (try? network.routes(from: alice, to: bob).get().path) == ["Alice", "Relay", "Bob"] })
        var ids: [String] = []
        for (from, to, bits) in [(alice, bob, 256), (bob, alice, 1024), (alice, bob, 8)] {
            let report = try network.relay(from: from, to: to, bits: bits).get()
            #expect(report.ok && report.bits == bits)
            #expect(report.path == [from.rawValue, "Relay", to.rawValue])
            ids.append(report.keyID)
            // Both ends hold it, with the same bits (compared by HMAC); the relay does not keep it.
            let held = network.relayShow(keyID: report.keyID, salt: 42)
            #expect(Set(held.keys) == [from, to], "\(report.keyID) held at \(held.keys)")
            #expect(held[from]?.digest != nil && held[from]?.digest == held[to]?.digest)
        }
        #expect(Set(ids).count == 3)
        // Relays consumed the same keys at both ends of each link.
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
        // Bad requests are refused with a reason, and change nothing.
        guard case .failure(let unknown) = network.relay(from: alice, to: NodeID("Nowhere")) else { Issue.record("relay to nowhere"); return }
        #expect(unknown.message.contains("Nowhere"))
        guard case .failure(let odd) = network.relay(from: alice, to: bob, bits: 100) else { Issue.record("100 bits accepted"); return }
        #expect(odd.message.contains("multiple of 8"))
        // Without the relay node there is no path, and the routes say why.
        let relay = try #require(network.recordedPID(NodeID("Relay")))
        kill(relay, SIGKILL)
        Processes.waitUntilGone([relay], seconds: 5)
        #expect(eventually(within: 10) { (try? network.routes(from: alice, to: bob).get().path) == nil })
        let why = try network.routes(from: alice, to: bob).get()
        #expect(why.excluded.contains { $0.link == "Alice-Relay" && $0.reason == "down" })
        guard case .failure(let none) = network.relay(from: alice, to: bob) else { Issue.record("relay without a path"); return }
        #expect(none.message.contains("no usable path"))
        passed = true
    }
}
