import QKDCore
import QKDLink
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// The 32-node Beijing–Shanghai backbone in one test process on a manual clock: a relay across
/// all 31 links, a fibre cut and an intercept-resend attack, each with exact expected results.
/// Deadlines are emulated seconds (the clock only moves when the network is quiet).
@Suite struct DeterministicBackboneTests {
    /// Keys distilled (deposited beyond the pre-shared ones) on `link`, at its `a` end.
    static func distilled(_ net: DeterministicNetwork, _ link: TopologyLink) -> UInt64 {
        let pool = net.node(link.a.rawValue)!.pools
        return pool.read(link.name) { $0.counters.deposited - UInt64(link.distillation.preSharedKeys) } ?? 0
    }

    /// The backbone with every link agreed and past its first distilled block.
    static func distilledBackbone() throws -> DeterministicNetwork {
        let net = try DeterministicNetwork(topology: TestTopologies.shipped("beijing-shanghai"))
        // The longest backbone link (about 90 km) sifts a 2^16-bit block in under 10 emulated s.
        let ok = net.run(seconds: 30) { net.allLinksAgreed && net.topology.links.allSatisfy { distilled(net, $0) > 0 } }
        #expect(ok, "every backbone link distils within 30 emulated s")
        return net
    }

    static func relay(_ net: DeterministicNetwork, _ from: String, _ to: String, bits: Int = 256) -> ControlReply? {
        net.control(ControlRequest.relay(to: to, bits: bits), to: from)
    }

    @Test func theSameSeedGivesTheSameKeysAtEveryNode() throws {
        func digests(_ net: DeterministicNetwork) -> [[KeyDigest]] {
            net.topology.links.flatMap { [net.digests($0.a.rawValue, link: $0.name), net.digests($0.b.rawValue, link: $0.name)] }
        }
        let first = try Self.distilledBackbone(), second = try Self.distilledBackbone()
        let (a, b) = (digests(first), digests(second))
        #expect(a.count == 62 && a.allSatisfy { !$0.isEmpty })
        #expect(a == b, "two runs of one seed hold different keys")
        #expect(first.clock.now() == second.clock.now() && first.steps == second.steps)
    }

    @Test func aRelayCrossesEveryTrustedNodeAndBothEndsHoldTheSameKey() throws {
        let net = try Self.distilledBackbone()
        let reply = try #require(Self.relay(net, "Beijing", "Shanghai", bits: 1024))
        let relay = try #require(reply.relay, "\(reply.error ?? "no report")")
        #expect(relay.ok && relay.bits == 1024)
        #expect(relay.path == net.topology.nodes.map(\.id.rawValue))  // the backbone is a line: every node
        let show = ControlRequest.relayShow(keyID: relay.keyID, salt: 77)
        let atSource = try #require(net.control(show, to: "Beijing")?.relay?.digest)
        let atDestination = try #require(net.control(show, to: "Shanghai")?.relay?.digest)
        #expect(atSource == atDestination)
        // Every link of the path spent ceil(1024/256) = 4 keys at both ends, the same ones.
        for link in net.topology.links {
            let a = net.digests(link.a.rawValue, link: link.name), b = net.digests(link.b.rawValue, link: link.name)
            #expect(a.map(\.keyID) == b.map(\.keyID), "\(link.name)")
        }
        let counters = try #require(net.status("Beijing")?.relays)
        #expect(counters.started == 1 && counters.delivered == 1 && counters.failed == 0)
        #expect(net.status("Jinan")?.relays?.forwarded == 1)
        // A short key is shown (path, bits) but never digested: under a caller's salt the digest
        // of 64 bits would be searchable.
        let short = try #require(Self.relay(net, "Beijing", "Shanghai", bits: 64)?.relay)
        let shown = try #require(net.control(ControlRequest.relayShow(keyID: short.keyID, salt: 77), to: "Shanghai")?.relay)
        #expect(short.ok && shown.path == relay.path && shown.digest == nil, "\(shown)")
    }

    @Test func aCutLinkGoesDownAtBothEndsAndRelaysWaitUntilItHeals() throws {
        let net = try Self.distilledBackbone()
        let (a, b, name) = ("Jinan", "Taian", "Jinan-Taian")
        #expect(net.linkState(a, name) == .up)
        let cutAt = net.clock.now()
        net.network.cutLink(NodeID(a), NodeID(b))
        // Manual time: the liveness timeout is 1 s; 5 s leaves the exact check below to say how long.
        let down = net.run(seconds: 5) { net.linkState(a, name) == .down && net.linkState(b, name) == .down }
        #expect(down, "both ends see the cut")
        // Liveness: 1 s of silence (plus at most one heartbeat interval) takes the link down.
        let downAfter = Double(net.clock.now().nanoseconds(since: cutAt)) / 1e9
        #expect(downAfter >= 1.0 && downAfter <= 1.2, "down after \(downAfter) s")
        // The ends advertise the change at once (10 ms of manual time carries it to every
        // node); the backbone is a line: no path while cut.
        net.run(seconds: 0.01)
        let refused = Self.relay(net, "Beijing", "Shanghai")?.error
        #expect(refused?.contains("no usable path") == true && refused?.contains(name) == true, "\(refused ?? "-")")
        net.network.healLink(NodeID(a), NodeID(b))
        // Manual time: a heartbeat (200 ms) brings the link up; the pool offer and its answer follow at once.
        let agreed = net.run(seconds: 5) { net.allLinksAgreed }
        #expect(agreed, "the link comes back and its pools agree")
        net.run(seconds: 0.01)
        let relay = Self.relay(net, "Beijing", "Shanghai")?.relay
        #expect(relay?.ok == true, "relays cross the link again")
        #expect(net.digests(a, link: name).map(\.digest) == net.digests(b, link: name).map(\.digest))
    }

    @Test func interceptResendIsCaughtAndTheLinkRecoversWhenEveLeaves() throws {
        let net = try Self.distilledBackbone()
        let name = "Hefei-R-HEFNAN-1"
        let link = try #require(net.topology.link(named: name))
        let eve = try #require(net.addEve(link: name, attack: .interceptResend))
        // Manual time: the block under Eve (2^16 sifted bits, a few emulated seconds on this link) and its estimation.
        let caught = net.run(seconds: 30) { net.linkState("Hefei", name) == .compromised }
        #expect(caught, "the link is marked compromised")
        let report = try #require(net.control(ControlRequest.pools, to: link.a.rawValue)?.pools?.first { $0.link == name })
        let qber = try #require(report.qber)
        #expect(abs(qber - 0.25) < 0.02, "QBER under full intercept-resend: \(qber)")
        #expect(report.abortReason?.contains("QBER") == true)
        #expect(eve.report.siftedSignalBits > 10_000 && abs(eve.report.knownFraction - 0.5) < 0.05, "\(eve.report)")
        // No path while the only path is compromised.
        #expect(Self.relay(net, "Nanjing", "Hefei")?.error?.contains("no usable path") == true)
        net.removeEve(link: name)
        let clean = net.run(seconds: 30) { net.linkState("Hefei", name) == .up }
        #expect(clean, "clean again after a block without Eve")
        #expect(net.digests("Hefei", link: name).map(\.digest) == net.digests(link.b.rawValue, link: name).map(\.digest))
    }
}
