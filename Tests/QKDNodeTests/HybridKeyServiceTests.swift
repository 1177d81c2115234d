import Foundation
import QKDCore
import QKDHybrid
import QKDKeyPool
@testable import QKDNode
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// Hybrid keys through the KME on line-3 (one thread, manual clock): the policy asked for with
/// `qkdnet_key_policy`, the same key bits at the slave as at the master, and a capsule that no
/// longer opens refusing the relay before any key is released.
@Suite struct HybridKeyServiceTests {
    @Test func aHybridKeyAskedForByExtensionIsTheSameAtBothEnds() throws {
        let net = try NodeKeyServiceTests.line3()
        let alice = NodeKeyServiceTests.routes(net, "Alice"), bob = NodeKeyServiceTests.routes(net, "Bob")
        let enc = "/api/v1/keys/SAE-Bob/enc_keys"
        let answers = try #require(net.kme("Alice") {
            [await alice.post(enc, as: "SAE-Alice", #"{"number": 2, "size": 256, "extension_mandatory": [{"qkdnet_key_policy": "hybrid"}]}"#),
             await alice.post(enc, as: "SAE-Alice", #"{"number": 1, "extension_optional": [{"qkdnet_key_policy": "hybrid"}]}"#),
             await alice.post(enc, as: "SAE-Alice", #"{"extension_mandatory": [{"qkdnet_key_policy": "pqc"}]}"#),
             await alice.post(enc, as: "SAE-Alice", #"{"extension_mandatory": [{"qkdnet_key_policy": "quantum"}]}"#),
             await alice.post(enc, as: "SAE-Alice", #"{"extension_optional": [{"qkdnet_key_policy": "multipath(2)"}]}"#)]
        })
        #expect(answers[0].status == 200 && answers[0].keys.count == 2, "\(answers[0])")
        #expect(answers[1].status == 200 && answers[1].keys.count == 1, "\(answers[1])")
        #expect(answers[2].status == 400 && answers[2].message.contains("qkdnet_key_policy: pqc is not served"), "\(answers[2])")
        #expect(answers[3].status == 400 && answers[3].message.contains("qkdnet_key_policy must be one of"), "\(answers[3])")
        #expect(answers[4].status == 200, "an optional policy the KME does not serve falls back: \(answers[4])")
        let taken = answers[0].keys + answers[1].keys
        // Bob's KME holds them, their kind recorded (never told by their bits); a QKD key's is qkd.
        let plain = try #require(net.kme("Alice") { await alice.get(enc + "?number=1", as: "SAE-Alice") })
        for (id, kind) in [(taken[0].id, "hybrid"), (plain.keys.first?.id ?? "", "qkd")] {
            let shown = net.control(.relayShow(keyID: id, salt: nil), to: "Bob")?.relay
            #expect(shown?.kind == kind && shown?.path == ["Alice", "Relay", "Bob"], "\(String(describing: shown))")
        }
        let ids = taken.map { "{\"key_ID\": \"\($0.id)\"}" }.joined(separator: ",")
        let dec = try #require(net.kme("Bob") { await bob.post("/api/v1/keys/SAE-Alice/dec_keys", as: "SAE-Bob", "{\"key_IDs\": [\(ids)]}") })
        #expect(dec.status == 200 && dec.keys.map(\.bytes) == taken.map(\.bytes), "\(dec)")
        #expect(Set(taken.map(\.bytes)).count == 3)
    }

    @Test func aCapsuleThatDoesNotOpenRefusesTheRelayAtTheSlavesKME() throws {
        let topology = try TestTopologies.shipped("line-3").with(secrecy: .reproducible)
        let seeds = SeedTree(root: topology.seed)
        let aliceKeys = try KMEKeys.derived(seeds, node: "Alice"), bobKeys = try KMEKeys.derived(seeds, node: "Bob")
        let sealed = try HybridRelay.seal(aliceKeys, destination: NodeID("Bob"), master: "SAE-Alice", slave: "SAE-Bob")
        #expect(try HybridRelay.open(sealed.capsule, bobKeys, master: "SAE-Alice", slave: "SAE-Bob") == sealed.secret)
        let pools = try NodePools(node: NodeID("Bob"), topology: topology, store: nil)
        let keys = RelayAgent.PoolKeys(pools: pools, maxWaiting: topology.kme.maxWaitingBitsPerPair, kem: bobKeys)
        func application(_ capsule: [UInt8], master: String = "SAE-Alice") -> RelayApplication {
            RelayApplication(master: master, slave: "SAE-Bob", keySize: 256, keyIDs: [KeyID(high: 1, low: 2)], capsule: capsule)
        }
        #expect(keys.storageRefusal(for: application(sealed.capsule), acknowledgedBits: 0) == nil)
        var flipped = sealed.capsule
        flipped[700] ^= 0x10
        #expect(keys.storageRefusal(for: application(flipped), acknowledgedBits: 0)?.contains("altered") == true)
        #expect(keys.storageRefusal(for: application(Array(sealed.capsule.prefix(500))), acknowledgedBits: 0)?.contains("500 bytes") == true)
        #expect(keys.storageRefusal(for: application(sealed.capsule, master: "SAE-Carol"), acknowledgedBits: 0)?.contains("altered") == true,
                "a capsule moved to another pair")
        let withoutKEM = RelayAgent.PoolKeys(pools: pools, maxWaiting: topology.kme.maxWaitingBitsPerPair, kem: nil)
        #expect(withoutKEM.storageRefusal(for: application(sealed.capsule), acknowledgedBits: 0)?.contains("no ML-KEM") == true)
        // The combined key differs from the QKD key, from one combined with another secret, and
        // is the same for the same inputs at both ends.
        let relayed = ApplicationKey(id: KeyID(high: 3, low: 4), master: "SAE-Alice", slave: "SAE-Bob",
                                     bits: BitVector(bytes: [UInt8](repeating: 0x5a, count: 32), count: 256), path: ["Alice", "Relay", "Bob"])
        let a = HybridRelay.combine([relayed], secret: sealed.secret, capsule: sealed.capsule)[0]
        let b = HybridRelay.combine([relayed], secret: try HybridRelay.open(sealed.capsule, bobKeys, master: "SAE-Alice", slave: "SAE-Bob"),
                                    capsule: sealed.capsule)[0]
        #expect(a.bits == b.bits)
        #expect(a.bits != relayed.bits)
        #expect(a.bits.count == 256 && a.id == relayed.id)
        let other = try HybridRelay.seal(aliceKeys, destination: NodeID("Bob"), master: "SAE-Alice", slave: "SAE-Bob")
        #expect(HybridRelay.combine([relayed], secret: other.secret, capsule: other.capsule)[0].bits != a.bits)
    }
}
