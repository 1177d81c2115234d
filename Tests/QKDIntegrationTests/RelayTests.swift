import QKDTestKit
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
        // Routing learns the links (and their keys) within a few advertisements, at both ends
        // (each end's view converges on its own: the test relays both ways).
        #expect(eventually(within: 30) {
            (try? network.routes(from: alice, to: bob).get().path) == ["Alice", "Relay", "Bob"]
                && (try? network.routes(from: bob, to: alice).get().path) == ["Bob", "Relay", "Alice"]
        })
        var ids: [String] = []
        for (from, to, bits) in [(alice, bob, 256), (bob, alice, 1024), (alice, bob, 8)] {
            let report = try network.relay(from: from, to: to, bits: bits).get()
            #expect(report.ok && report.bits == bits)
            #expect(report.path == [from.rawValue, "Relay", to.rawValue])
            ids.append(report.keyID)
            // Both ends hold it, with the same bits (compared by HMAC); the relay does not keep it.
            // An 8-bit key is never digested (under the caller's salt its digest would give it away).
            let held = network.relayShow(keyID: report.keyID, salt: 42)
            #expect(Set(held.keys) == [from, to], "\(report.keyID) held at \(held.keys)")
            if bits >= 128 {
                #expect(held[from]?.digest != nil && held[from]?.digest == held[to]?.digest)
            } else {
                #expect(held[from]?.digest == nil && held[to]?.digest == nil && held[to]?.bits == bits)
            }
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
        // Each node's relay counters (qkdctl status --json, qkdctl watch): Alice started two and
        // received one, Bob the other way round, the relay node forwarded all three.
        let counters = Dictionary(uniqueKeysWithValues: network.status().nodes.compactMap { n in n.relays.map { (n.id, $0) } })
        let a = try #require(counters["Alice"]), b = try #require(counters["Bob"]), r = try #require(counters["Relay"])
        #expect(a.requested == 2 && a.started == 2 && a.delivered == 2 && a.received == 1 && a.failed == 0 && a.noPath == 0, "\(a)")
        #expect(b.requested == 1 && b.started == 1 && b.delivered == 1 && b.received == 2 && b.failed == 0, "\(b)")
        #expect(r.forwarded == 3 && r.requested == 0 && r.received == 0, "\(r)")
        // Without the relay node there is no path, and the routes say why.
        let relay = try #require(network.recordedPID(NodeID("Relay")))
        kill(relay, SIGKILL)
        Processes.waitUntilGone([relay], seconds: 5)
        // 10 s: the killed node's links go down after 1 s of silence and are advertised at once.
        #expect(eventually(within: 10) { (try? network.routes(from: alice, to: bob).get().path) == nil })
        let why = try network.routes(from: alice, to: bob).get()
        #expect(why.excluded.contains { $0.link == "Alice-Relay" && $0.reason == "down" })
        guard case .failure(let none) = network.relay(from: alice, to: bob) else { Issue.record("relay without a path"); return }
        #expect(none.message.contains("no usable path"))
        let after = try #require(network.status().nodes.first { $0.id == "Alice" }?.relays)
        #expect(after.requested == 3 && after.noPath == 1 && after.started == 2, "\(after)")
        #expect(after.lastFailure?.contains("no usable path") == true)
        passed = true
    }

    /// On the 16-city mesh (its quantum layer slowed down so the test stays light: relays use
    /// the pre-shared keys), a relay whose path loses a trusted node takes another path, and
    /// when a link of that path is cut, yet another.
    @Test func meshRelaysTakeAnotherPathWhenANodeOnTheirPathDies() throws {
        let network = try Harness.upSlowed("china-16-cities.yaml", label: "mesh-relay")
        var passed = false
        defer {
            if !passed { print(network.diagnostics(NodeID("Beijing"), lines: 30)) }
            Harness.tearDown(network)
        }
        // A pair of cities whose path has a transit node that can be avoided.
        let topology = network.topology
        func reachable(_ from: NodeID, _ to: NodeID, without: NodeID, cut: String? = nil) -> Bool {
            var seen: Set<NodeID> = [from], frontier = [from]
            while let n = frontier.popLast() {
                for l in topology.links(of: n) where l.name != cut {
                    guard let p = l.peer(of: n), p != without, !seen.contains(p) else { continue }
                    if p == to { return true }
                    seen.insert(p)
                    frontier.append(p)
                }
            }
            return false
        }
        let cities = topology.nodes.filter { $0.role == .metroCore }.map(\.id)
        var chosen: (from: NodeID, to: NodeID, path: [String], victim: NodeID)?
        search: for from in cities {
            for to in cities where to != from {
                var path: [String]?
                // 30 s: the links on a path have keys beyond their reserve and routing has heard of them.
                guard eventually(within: 30, { path = try? network.routes(from: from, to: to).get().path; return path != nil }),
                      let path else { continue }
                for v in path.dropFirst().dropLast().map(NodeID.init) where reachable(from, to, without: v) {
                    chosen = (from, to, path, v)
                    break search
                }
            }
        }
        let c = try #require(chosen, "no city pair with an avoidable transit node")
        let first = try network.relay(from: c.from, to: c.to).get()
        #expect(first.path == c.path)
        let pid = try #require(network.recordedPID(c.victim))
        kill(pid, SIGKILL)
        Processes.waitUntilGone([pid], seconds: 5)
        // Routing learns that the node's links are down, and chooses around it.
        var detour: [String]?
        #expect(eventually(within: 20) {
            detour = try? network.routes(from: c.from, to: c.to).get().path
            return detour.map { !$0.contains(c.victim.rawValue) } ?? false
        }, "no detour around \(c.victim)")
        let second = try network.relay(from: c.from, to: c.to).get()
        #expect(!second.path.contains(c.victim.rawValue))
        #expect(second.path.first == c.from.rawValue && second.path.last == c.to.rawValue)
        let held = network.relayShow(keyID: second.keyID, salt: 7)
        #expect(held[c.from]?.digest != nil && held[c.from]?.digest == held[c.to]?.digest)
        print("mesh relay \(c.from) → \(c.to): \(first.path.joined(separator: ">")), after \(c.victim) died: \(second.path.joined(separator: ">"))")

        // Then a fibre cut on the new path, mid-run: new relays take yet another path.
        let hops = zip(second.path, second.path.dropFirst()).compactMap { a, b in
            topology.links(of: NodeID(a)).first { $0.peer(of: NodeID(a)) == NodeID(b) }?.name
        }
        let cutLink = try #require(hops.first { reachable(c.from, c.to, without: c.victim, cut: $0) }, "no avoidable link on \(second.path)")
        _ = try network.fault(.cut(link: cutLink)).get()
        var around: [String]?
        // 20 s: the cut link goes down after 1 s of silence and is advertised at once.
        #expect(eventually(within: 20) {
            around = try? network.routes(from: c.from, to: c.to).get().path
            guard let around else { return false }
            let ends = topology.link(named: cutLink).map { Set([$0.a.rawValue, $0.b.rawValue]) }
            return !zip(around, around.dropFirst()).contains { Set([$0, $1]) == ends }
        }, "no route around the cut \(cutLink)")
        // (Under a loaded machine a link of a 40-hop path may be re-agreeing its pool; a relay
        // that meets it fails cleanly and the next one goes through.)
        var third: RelayReport?
        #expect(eventually(within: 20) { third = try? network.relay(from: c.from, to: c.to).get(); return third?.ok == true })
        let cutEnds = topology.link(named: cutLink).map { Set([$0.a.rawValue, $0.b.rawValue]) }
        #expect(third.map { p in !p.path.contains(c.victim.rawValue) && !zip(p.path, p.path.dropFirst()).contains { Set([$0, $1]) == cutEnds } } == true,
                "\(third?.path ?? []) (routes said \(around ?? []))")
        print("after cutting \(cutLink): \(third?.path.joined(separator: ">") ?? "no relay")")
        passed = true
    }
}
