import QKDTestKit
import Foundation
import QKDAttacks
import QKDCore
import QKDLaunch
import QKDPhysics
import QKDTopology
import QKDWire
import Testing

/// Eavesdroppers spliced into a running line-3 (`qkdctl eve add/remove`): the link sees them
/// (or, without decoys, cannot), stops adding key, routing avoids it, and it comes back by
/// itself once Eve is gone.
@Suite(.serialized) struct EavesdropperProcessTests {
    static func end(_ network: Network, _ link: String, _ role: String) -> QuantumLinkReport? {
        network.pools().links.first { $0.link == link }?.ends.first { $0.role == role }
    }

    static func state(_ network: Network, _ link: String) -> LinkState? {
        network.pools().links.first { $0.link == link }?.state
    }

    /// Both ends running a session with at least `blocks` sifted blocks in it.
    static func waitForBlocks(_ network: Network, _ link: String, atLeast blocks: UInt64, within seconds: Double) -> Bool {
        eventually(within: seconds) {
            ["alice", "bob"].allSatisfy { (EavesdropperProcessTests.end(network, link, $0)?.sessionBlocks ?? 0) >= blocks }
        }
    }

    /// A link under full intercept-resend since block `attached`: its QBER is 25 % ± 2 points,
    /// its rounds are aborted for the QBER, and neither end kept key from a block after the one
    /// in progress when Eve came (the key stops within two rounds).
    static func expectInterceptResendCaught(_ network: Network, _ link: String, attachedAt attached: UInt64) throws -> PoolsStatus.Link {
        let pools = try #require(network.pools().links.first { $0.link == link })
        let qber = try #require(pools.qber)
        #expect(abs(qber - 0.25) <= 0.02, "QBER under full intercept-resend: \(qber)")
        #expect(pools.abortReason?.contains("QBER") == true, "\(pools.abortReason ?? "-")")
        for role in ["alice", "bob"] {
            let lastKey = end(network, link, role)?.lastKeyBlock
            #expect(lastKey.map { $0 <= attached + 1 } ?? true, "\(role): key from block \(lastKey ?? 0), Eve came at block \(attached)")
        }
        return pools
    }

    @Test func fullInterceptResendIsDetectedStopsTheKeyAndTheLinkRecoversWhenEveLeaves() throws {
        let network = try Harness.up("line-3.yaml", label: "eve-ir")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let link = "Alice-Relay"
        let started = Self.waitForBlocks(network, link, atLeast: 1, within: 60)
        #expect(started, "the link sifts blocks")
        #expect(Self.state(network, link) == .up)
        let eve = try network.addEve(link: link, attack: .interceptResend, fraction: 1).get()
        #expect(eve.attack == "intercept-resend" && eve.pid != nil)
        #expect(network.eves().map(\.link) == [link])
        // The block in progress when Eve arrived may be partly honest; every later one is hers.
        let attached = ["alice", "bob"].compactMap { Self.end(network, link, $0)?.sessionBlocks }.max() ?? 0
        // 90 s: the block in progress when Eve came (maybe partly honest) and the next one, a few seconds each on 25 km.
        #expect(eventually(within: 90) { Self.state(network, link) == .compromised }, "the link is marked compromised")
        #expect(network.status().links.first { $0.id == link }?.state == .compromised, "qkdctl status shows it")
        // 150 s: three blocks under attack (a few seconds each), with room for a machine running other suites.
        let aborted = eventually(within: 150) { (network.pools().links.first { $0.link == link }?.roundsAborted ?? 0) >= 3 }
        #expect(aborted, "every round under attack is aborted")
        let pools = try Self.expectInterceptResendCaught(network, link, attachedAt: attached)
        let generated = pools.generatedBitsTotal
        let sifted = pools.blocks
        // 150 s: three more blocks, as above.
        let evenMore = eventually(within: 150) { (network.pools().links.first { $0.link == link }?.blocks ?? 0) >= sifted + 3 }
        #expect(evenMore, "blocks go on under attack")
        #expect(network.pools().links.first { $0.link == link }?.generatedBitsTotal == generated, "no key while Eve is there")
        // Routing avoids the link: no path from Alice to Bob on a line, with the reason.
        let avoided = eventually(within: 15) {
            guard let routes = try? network.routes(from: NodeID("Alice"), to: NodeID("Bob")).get() else { return false }
            return routes.path == nil && routes.excluded.contains { $0.link == link && $0.reason == "compromised" }
        }
        #expect(avoided, "routes leave the compromised link out, naming why")
        // What Eve learned: she measured every pulse in a random basis, so half the sifted bits.
        let learned = try #require(network.eveReport(link))
        #expect(learned.siftedSignalBits > 100_000 && abs(learned.knownFraction - 0.5) < 0.05, "\(learned)")

        let last = try network.removeEve(link: link).get()
        #expect(last.knownSignalBits >= learned.knownSignalBits)
        #expect(network.eves().isEmpty)
        // 120 s: the block in progress when Eve left, then a clean one clears the mark.
        #expect(eventually(within: 120) { Self.state(network, link) == .up }, "back to up after a clean round")
        // 120 s: a clean block distils key again (the same block that cleared the mark, or the next).
        #expect(eventually(within: 120) { (network.pools().links.first { $0.link == link }?.generatedBitsTotal ?? 0) > generated },
                "key again")
        #expect(network.audit().ok)
        passed = true
    }

    @Test func photonNumberSplittingIsCaughtByDecoysAndTamperingByAuthentication() throws {
        let network = try Harness.up("line-3.yaml", label: "eve-pns")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let link = "Relay-Bob"
        let started = Self.waitForBlocks(network, link, atLeast: 1, within: 60)
        #expect(started, "the link sifts blocks")
        _ = try network.addEve(link: link, attack: .photonNumberSplitting).get()
        // 120 s: a block wholly under PNS and its decoy estimation (a few seconds per block on 25 km).
        #expect(eventually(within: 120) { Self.state(network, link) == .compromised }, "PNS caught")
        let pools = try #require(network.pools().links.first { $0.link == link })
        #expect((pools.qber ?? 1) < 0.11, "the QBER stays low under PNS: \(pools.qber ?? -1)")
        #expect(pools.abortReason?.contains("single-photon") == true, "\(pools.abortReason ?? "-")")
        let pns = try network.removeEve(link: link).get()
        #expect(pns.photonsKept > 0 && pns.knownFraction > 0.9, "\(pns)")
        // 120 s: a clean block after she leaves clears the mark.
        #expect(eventually(within: 120) { Self.state(network, link) == .up })

        // A classical man in the middle: every altered message is caught, no tampered round kept.
        let before = try #require(network.pools().links.first { $0.link == link })
        let failedBefore = before.ends.map { $0.blocksFailedAuthentication + $0.distillationMessagesRejected }.reduce(0, +)
        _ = try network.addEve(link: link, attack: .classicalTamper, fraction: 1).get()
        let attached = Self.end(network, link, "bob")?.sessionBlocks ?? 0
        let more = Self.waitForBlocks(network, link, atLeast: attached + 4, within: 150)
        #expect(more, "blocks go on under attack")
        let tamper = try #require(network.eveReport(link))
        #expect(tamper.messagesAltered > 0 && tamper.messagesAltered == tamper.messagesSeen)
        // Distillation may run behind the blocks' closing on a loaded machine: wait for the
        // tampered rounds to reach their tag checks.
        var during = try #require(network.pools().links.first { $0.link == link })
        func failures(_ p: PoolsStatus.Link) -> UInt64 { p.ends.map { $0.blocksFailedAuthentication + $0.distillationMessagesRejected }.reduce(0, +) }
        let caught = eventually(within: 120) {
            if let now = network.pools().links.first(where: { $0.link == link }) { during = now }
            return failures(during) > failedBefore
        }
        #expect(caught, "authentication failures counted")
        for role in ["alice", "bob"] {
            let lastKey = Self.end(network, link, role)?.lastKeyBlock
            #expect(lastKey.map { $0 < attached } ?? true, "\(role): no key from a tampered round (last key block \(lastKey ?? 0), Eve at \(attached))")
        }
        _ = try network.removeEve(link: link).get()
        // Rounds stalled by the tampering hold the source (backlog) until they are abandoned
        // (30 s); a loaded CI machine needed more than 120 s in all once.
        #expect(eventually(within: 240) { (network.pools().links.first { $0.link == link }?.generatedBitsTotal ?? 0) > during.generatedBitsTotal })
        #expect(network.audit().ok)
        passed = true
    }

    /// The decoy lesson (Topologies/decoy-lesson.yaml): the same photon-number splitting on a
    /// decoy-state link and on a weak-signal link without decoys. The decoy analysis catches her
    /// on Alice-Relay; Relay-Bob stays up and keeps adding key, and what Eve knows of its sifted
    /// key is, within 10 %, the tagged fraction GLLP charges at the gain the link measured.
    @Test func withoutDecoysPhotonNumberSplittingGoesUnnoticedWhileDecoysCatchIt() throws {
        let network = try Harness.up("decoy-lesson.yaml", label: "eve-lesson")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let (decoy, plain) = ("Alice-Relay", "Relay-Bob")
        #expect(Self.waitForBlocks(network, decoy, atLeast: 1, within: 60) && Self.waitForBlocks(network, plain, atLeast: 1, within: 60))
        _ = try network.addEve(link: decoy, attack: .photonNumberSplitting).get()
        _ = try network.addEve(link: plain, attack: .photonNumberSplitting).get()
        let attached = ["alice", "bob"].compactMap { Self.end(network, plain, $0)?.sessionBlocks }.max() ?? 0
        let generated = network.pools().links.first { $0.link == plain }?.generatedBitsTotal ?? 0
        // 90 s: a block wholly under PNS on the decoy link and its estimation.
        #expect(eventually(within: 90) { Self.state(network, decoy) == .compromised }, "the decoy analysis catches PNS")
        var states: Set<String> = []  // "missing" when the link is absent from the report
        // 120 s: four blocks on the plain link while Eve sits on it (a few seconds each).
        let more = eventually(within: 120) {
            states.insert(Self.state(network, plain)?.rawValue ?? "missing")
            return ["alice", "bob"].allSatisfy { (Self.end(network, plain, $0)?.sessionBlocks ?? 0) >= attached + 4 }
        }
        #expect(more && states == ["up"], "without decoys the link goes on, unaware: states seen \(states)")
        // Distillation may run behind the blocks' closing on a loaded machine: wait for the
        // attacked blocks' key (no round aborted meanwhile).
        var pools = try #require(network.pools().links.first { $0.link == plain })
        let keyed = eventually(within: 120) {
            if let now = network.pools().links.first(where: { $0.link == plain }) { pools = now }
            return pools.roundsAborted > 0 || pools.generatedBitsTotal > generated
        }
        #expect(keyed && pools.roundsAborted == 0 && pools.generatedBitsTotal > generated,
                "key from attacked rounds: \(pools.generatedBitsTotal) > \(generated), \(pools.roundsAborted) rounds aborted")
        let gain = try #require(pools.gain)
        let tagged = KeyRate.taggedFraction(mu: 0.05, gain: gain)
        let eve = try #require(network.eveReport(plain))
        #expect(eve.siftedSignalBits > 100_000 && abs(eve.knownFraction - tagged) < 0.1 * tagged,
                "Eve knows \(eve.knownFraction) of the sifted key; GLLP's tagged fraction at gain \(gain) is \(tagged)")
        #expect(eve.gllpTaggedFraction.map { abs($0 - tagged) < 0.1 * tagged } == true, "Eve's own figure \(eve.gllpTaggedFraction ?? -1)")
        _ = try network.removeEve(link: decoy).get()
        _ = try network.removeEve(link: plain).get()
        // 60 s: a clean block after she leaves clears the mark.
        #expect(eventually(within: 60) { Self.state(network, decoy) == .up })
        #expect(network.audit().ok)
        passed = true
    }

    /// In a mesh (SECOQC Vienna), a relay between the ends of an attacked link goes around it
    /// once the link is compromised, and no key is lost anywhere.
    @Test func relaysRouteAroundACompromisedLinkInAMesh() throws {
        let network = try Harness.up("secoqc-vienna.yaml", label: "eve-mesh")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let (from, to, link) = (NodeID("SIE"), NodeID("GUD"), "SIE-GUD")
        // 90 s: the direct link has keys beyond its reserve (its first blocks) and routing has heard of them.
        let direct = eventually(within: 90) { (try? network.relay(from: from, to: to).get().path) == ["SIE", "GUD"] }
        #expect(direct, "the direct link carries the relay before Eve comes")
        _ = try network.addEve(link: link, attack: .interceptResend, fraction: 1).get()
        // 120 s: a block wholly under Eve on this mesh link and its estimation, with 6 nodes on 2 cores.
        #expect(eventually(within: 120) { Self.state(network, link) == .compromised }, "the link is marked compromised")
        var detour: [String]?
        // 60 s: the compromised link is advertised at once; relays retried until the detour has spare keys.
        let rerouted = eventually(within: 60) {
            guard let report = try? network.relay(from: from, to: to).get() else { return false }
            detour = report.path
            return report.ok && report.path.count > 2
        }
        #expect(rerouted, "a relay goes around the compromised link: \(detour ?? [])")
        #expect(detour.map { !MeshTests.crosses($0, "SIE", "GUD") } ?? false)
        _ = try network.removeEve(link: link).get()
        #expect(network.audit().ok, "no key lost or split at any link end")
        passed = true
    }

    /// The shipped line-3 tour (`make scenario`): Eve, a cut and a heal while relays run; the
    /// report shows the link compromised then up, relays failing during the attack and
    /// delivered after the heal, and no key lost.
    @Test func aScenarioPlaysItsTimelineAndReportsNoKeyLost() throws {
        let (scenario, _) = try ScenarioParser.load(path: Harness.topology("scenarios/line-3-tour.yaml"),
                                                    attacks: Eavesdropper.Attack.allCases.map(\.rawValue))
        let network = try Network.up(topologyPath: scenario.topologyPath, runDir: Harness.runDirectory("scenario"),
                                     binDirectory: Harness.binDirectory, readyTimeoutSeconds: 60)
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let report = network.run(scenario)
        #expect(report.events.count == 3 && report.events.allSatisfy(\.ok), "\(report.events)")
        let states = report.samples.compactMap { $0.links.first { $0.link == "Alice-Relay" }?.state }
        let aliceLog = (try? String(contentsOfFile: network.layout.logPath(NodeID("Alice")), encoding: .utf8)) ?? ""
        // The mark clears with the first clean block after she left; on a loaded machine that
        // block may be distilled after the timeline ends, so wait for it.
        let cleared = states.last == .up || eventually(within: 120) { Self.state(network, "Alice-Relay") == .up }
        #expect(states.contains(.compromised) && cleared,
                "\(states)\n\(aliceLog.split(separator: "\n").filter { $0.contains("interposer") || $0.contains("compromised") || $0.contains("link ") }.joined(separator: "\n"))")
        #expect(report.samples.contains { $0.links.contains { $0.link == "Relay-Bob" && $0.state == .down } }, "the cut shows")
        let relays = try #require(report.relays.first)
        #expect(relays.attempted == relays.delivered + relays.failed && relays.failed > 0 && relays.delivered > 0, "\(relays)")
        #expect(report.keysLost == 0 && report.audit?.ok == true)
        #expect(report.summary.contains("keys lost: 0"))
        passed = true
    }
}
