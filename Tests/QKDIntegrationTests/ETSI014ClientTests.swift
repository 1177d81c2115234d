import Foundation
import QKDClient
import QKDLaunch
import QKDTestKit
import Testing

/// The Swift ETSI 014 client against real KMEs (line-3's processes, mutual TLS with the run's
/// certificates): the three calls, and the spec's errors as typed errors.
@Suite(.serialized) struct ETSI014ClientTests {
    @Test func theClientTakesAKeyAtOneKMEAndTheSameKeyAtTheOtherWithTypedErrors() async throws {
        let network = try Harness.up("line-3.yaml", label: "client")
        defer { Harness.tearDown(network) }
        let urls = Dictionary(uniqueKeysWithValues: network.status().nodes.compactMap { n in n.kmeURL.map { (n.id, $0) } })
        let pki = PKI(runDirectory: network.layout.root)
        func client(_ node: String, as sae: String) throws -> ETSI014Client {
            // The library's policy retries a 503 ("not now": a relay timed out on a loaded machine);
            // 400 and 401 are never retried.
            try ETSI014Client(kmeURL: try #require(urls[node]), caPath: pki.caPath, certificatePath: pki.saeCertificatePath(sae),
                              keyPath: pki.saeKeyPath(sae))
        }
        // Relays need both links up with their pools agreed (a second or so after readiness).
        #expect(eventually(within: 30) { network.pools().links.allSatisfy { $0.state == .up && $0.ends.allSatisfy(\.synchronised) } },
                "line-3's links did not come up: \(network.pools().links.map(\.state))")
        let alice = try client("Alice", as: "SAE-Alice"), bob = try client("Bob", as: "SAE-Bob"), stranger = try client("Alice", as: "SAE-Bob")
        // Every client is shut down, whatever the checks below throw (AsyncHTTPClient traps on a
        // client dropped without it).
        do {
            try await Self.exercise(alice: alice, bob: bob, stranger: stranger, urls: urls, pki: pki, scratch: network.layout.root)
        } catch {
            for c in [alice, bob, stranger] { await c.shutdown() }
            throw error
        }
        for c in [alice, bob, stranger] { await c.shutdown() }

        // A client whose certificate file is missing: refused at once, the file named.
        #expect {
            _ = try ETSI014Client(kmeURL: "https://127.0.0.1:1", caPath: pki.caPath, certificatePath: "/nonexistent/sae.pem", keyPath: "/nonexistent/sae.key")
        } throws: { ($0 as? ETSI014Error)?.kind == .configuration && "\($0)".contains("/nonexistent/sae.pem") }
        // Nothing listening: a transport error, not a hang.
        let nobody = try ETSI014Client(kmeURL: "https://127.0.0.1:1", caPath: pki.caPath, certificatePath: pki.saeCertificatePath("SAE-Alice"),
                                       keyPath: pki.saeKeyPath("SAE-Alice"), timeout: .seconds(5), retry: .init(attempts: 1))
        let refused = await Self.failure { () async throws(ETSI014Error) in _ = try await nobody.status(slave: "SAE-Bob") }
        #expect(refused?.kind == .transport || refused?.kind == .timeout, "\(String(describing: refused))")
        await nobody.shutdown()
    }

    static func failure(_ call: () async throws(ETSI014Error) -> Void) async -> ETSI014Error? {
        do { try await call(); return nil } catch { return error }
    }

    static func exercise(alice: ETSI014Client, bob: ETSI014Client, stranger: ETSI014Client, urls: [String: String], pki: PKI,
                         scratch: String) async throws {
        let status = try await alice.status(slave: "SAE-Bob")
        #expect(status.sourceKMEID == "Alice" && status.targetKMEID == "Bob" && status.masterSAEID == "SAE-Alice" && status.keySize == 256)
        let keys = try await alice.encKeys(slave: "SAE-Bob", number: 2, size: 512)
        #expect(keys.count == 2 && keys.allSatisfy { $0.key.count == 64 })
        let same = try await bob.decKeys(master: "SAE-Alice", keyIDs: keys.map(\.keyID))
        #expect(same == keys)

        let unknown = await Self.failure { () async throws(ETSI014Error) in _ = try await alice.status(slave: "SAE-Nobody") }
        #expect(unknown?.kind == .badRequest && unknown?.status == 400 && unknown?.message.contains("SAE-Nobody") == true, "\(String(describing: unknown))")
        let again = await Self.failure { () async throws(ETSI014Error) in _ = try await bob.decKeys(master: "SAE-Alice", keyIDs: keys.map(\.keyID)) }
        #expect(again?.kind == .badRequest && again?.message.hasPrefix("one or more keys specified are not found") == true, "\(String(describing: again))")
        let foreign = await Self.failure { () async throws(ETSI014Error) in _ = try await stranger.status(slave: "SAE-Alice") }
        #expect(foreign?.kind == .unauthorized && foreign?.status == 401, "\(String(describing: foreign))")
        let tooMany = await Self.failure { () async throws(ETSI014Error) in _ = try await alice.encKeys(slave: "SAE-Bob", number: 129) }
        #expect(tooMany?.kind == .badRequest && tooMany?.message.contains("max_key_per_request") == true, "\(String(describing: tooMany))")
        let oddName = await Self.failure { () async throws(ETSI014Error) in _ = try await alice.status(slave: "SAE/../x") }
        #expect(oddName?.kind == .badRequest && oddName?.status == nil, "refused before it is sent: \(String(describing: oddName))")
        // A hybrid key (ML-KEM-768 keys from `qkdctl up`, read by each node), asked for with
        // curl as another tool would: Bob's KME gives the same bits.
        let hybrid = try Curl.request(try #require(urls["Alice"]) + "/api/v1/keys/SAE-Bob/enc_keys",
                                      body: #"{"number": 2, "extension_mandatory": [{"qkdnet_key_policy": "hybrid"}]}"#, ca: pki.caPath,
                                      certificate: pki.saeCertificatePath("SAE-Alice"), key: pki.saeKeyPath("SAE-Alice"), scratch: scratch)
        #expect(hybrid.status == 200 && hybrid.keys.count == 2, "\(hybrid)")
        let hybridAtBob = try await bob.decKeys(master: "SAE-Alice", keyIDs: hybrid.keys.map(\.id))
        #expect(hybridAtBob.map(\.key) == hybrid.keys.map { Array($0.key) })
    }
}
