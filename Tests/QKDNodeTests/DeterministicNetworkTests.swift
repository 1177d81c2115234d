import QKDCore
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// Whole networks in one test process on a manual clock (`DeterministicNetwork`): every
/// node's real shell and instances, the quantum layer on, no thread racing another. Deadlines
/// here are manual (emulated) seconds, not wall time.
@Suite struct DeterministicNetworkTests {
    /// Both ends' digests of every key of every link, by link.
    static func linkDigests(_ net: DeterministicNetwork) -> [String: [KeyDigest]] {
        var out: [String: [KeyDigest]] = [:]
        for link in net.topology.links {
            out[link.name] = net.digests(link.a.rawValue, link: link.name)
        }
        return out
    }

    /// Runs line-3 until every link has distilled keys beyond its pre-shared ones.
    static func distilledLine3() throws -> DeterministicNetwork {
        let net = try DeterministicNetwork(topology: TestTopologies.shipped("line-3"))
        let preShared = net.node("Alice")!.pools.read("Alice-Relay") { $0.heldKeys }!
        // 20 s of emulated time: each 25 km link sifts a 2^16-bit block in well under that.
        let distilled = net.run(seconds: 20) {
            net.topology.links.allSatisfy { link in
                (net.node(link.a.rawValue)!.pools.read(link.name) { $0.counters.deposited } ?? 0) > UInt64(preShared)
            }
        }
        #expect(distilled, "no distilled key on every link after 20 emulated s")
        return net
    }

    @Test func line3DistilsTheSameKeysAtBothEndsOfEveryLink() throws {
        let net = try Self.distilledLine3()
        #expect(net.readyLines.count == 3)
        // Let rounds in flight settle at this instant, then compare both ends' keys.
        net.run(seconds: 0.001)
        for link in net.topology.links {
            let a = net.digests(link.a.rawValue, link: link.name), b = net.digests(link.b.rawValue, link: link.name)
            #expect(!a.isEmpty)
            #expect(a.map(\.keyID) == b.map(\.keyID), "link \(link.name): key IDs differ")
            #expect(a.map(\.digest) == b.map(\.digest), "link \(link.name): key bits differ")
        }
        net.stop()
        #expect(net.nodes.allSatisfy { !$0.running })
    }

    @Test func theSameSeedGivesTheSameKeysEveryRun() throws {
        let first = try Self.distilledLine3()
        let second = try Self.distilledLine3()
        #expect(first.clock.now() == second.clock.now())
        #expect(Self.linkDigests(first) == Self.linkDigests(second))
        #expect(first.steps == second.steps)
    }
}
