import Foundation
import QKDCore
import QKDLaunch
import QKDTopology
import QKDWire
import Testing

/// One HTTPS request with curl (mutual TLS when a client certificate is given).
struct Curl {
    var exitCode: Int32
    var status: Int
    var body: String

    static func get(_ url: String, ca: String, certificate: String?, key: String?, scratch: String) throws -> Curl {
        try request(url, ca: ca, certificate: certificate, key: key, scratch: scratch)
    }

    /// GET, or POST with `body` (sent as application/json).
    static func request(_ url: String, body: String? = nil, ca: String, certificate: String?, key: String?, scratch: String) throws -> Curl {
        let out = scratch + "/curl-\(UInt32.random(in: 0...UInt32.max))"
        var args = ["-s", "-o", out + ".body", "-w", "%{http_code}", "--max-time", "20", "--cacert", ca]
        if let certificate, let key { args += ["--cert", certificate, "--key", key] }
        if let body { args += ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body] }
        let pid = try Processes.spawn(executable: "/usr/bin/env", arguments: ["curl"] + args + [url], outputPath: out + ".out")
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        let code = (try? String(contentsOfFile: out + ".out", encoding: .utf8)) ?? ""
        let body = (try? String(contentsOfFile: out + ".body", encoding: .utf8)) ?? ""
        return Curl(exitCode: (status >> 8) & 0xFF, status: Int(code.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, body: body)
    }

    /// The body as a JSON object.
    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] }

    /// (key_ID, key bytes) of a key container.
    var keys: [(id: String, key: Data)] {
        (json?["keys"] as? [[String: Any]] ?? []).compactMap { entry in
            guard let id = entry["key_ID"] as? String, let text = entry["key"] as? String, let key = Data(base64Encoded: text) else { return nil }
            return (id, key)
        }
    }
}

@Suite(.serialized) struct KMETests {
    @Test func theKMEServesStatusOverMutualTLSToItsOwnSAEsOnly() throws {
        let network = try Harness.up("line-3.yaml", label: "kme")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let status = network.status()
        let urls = Dictionary(uniqueKeysWithValues: status.nodes.map { ($0.id, $0.kmeURL) })
        let alice = try #require(urls["Alice"] ?? nil)
        #expect(alice.hasPrefix("https://127.0.0.1:"))
        #expect(Set(urls.values.compactMap { $0 }).count == 3, "every node serves its own KME")
        let pki = PKI(runDirectory: network.layout.root)
        let scratch = network.layout.root
        func get(_ path: String, as sae: String?) throws -> Curl {
            try Curl.get(alice + path, ca: pki.caPath, certificate: sae.map(pki.saeCertificatePath), key: sae.map(pki.saeKeyPath), scratch: scratch)
        }
        // The master SAE at this KME gets the status of its supply to a slave SAE elsewhere.
        let ok = try get("/api/v1/keys/SAE-Bob/status", as: "SAE-Alice")
        #expect(ok.status == 200, "\(ok)")
        let body = try JSONSerialization.jsonObject(with: Data(ok.body.utf8)) as? [String: Any]
        #expect(body?["source_KME_ID"] as? String == "Alice" && body?["target_KME_ID"] as? String == "Bob")
        #expect(body?["master_SAE_ID"] as? String == "SAE-Alice" && body?["slave_SAE_ID"] as? String == "SAE-Bob")
        #expect(body?["key_size"] as? Int == 256)
        let stored = body?["stored_key_count"] as? Int ?? -1, capacity = body?["max_key_count"] as? Int ?? -1
        #expect(stored > 0 && stored <= capacity)
        for field in ["max_key_per_request", "max_key_size", "min_key_size", "max_SAE_ID_count"] { #expect(body?[field] is Int, "\(field)") }
        // Another node's SAE: 401 with a JSON message; an unknown slave: 400.
        let foreign = try get("/api/v1/keys/SAE-Alice/status", as: "SAE-Bob")
        #expect(foreign.status == 401)
        #expect(foreign.body.contains("\"message\""))
        let unknown = try get("/api/v1/keys/SAE-Nobody/status", as: "SAE-Alice")
        #expect(unknown.status == 400 && unknown.body.contains("SAE-Nobody"))
        // No client certificate, or one from another CA: the TLS handshake fails.
        #expect(try get("/api/v1/keys/SAE-Bob/status", as: nil).status == 0)
        let stranger = PKI(runDirectory: scratch + "/stranger")
        try stranger.ensure(for: network.topology)
        let other = try Curl.get(alice + "/api/v1/keys/SAE-Bob/status", ca: pki.caPath, certificate: stranger.saeCertificatePath("SAE-Alice"),
                                 key: stranger.saeKeyPath("SAE-Alice"), scratch: scratch)
        #expect(other.status == 0 && other.exitCode != 0, "\(other)")
        // A KME's own certificate (same CA, server use only) does not call as an SAE: the TLS
        // handshake refuses a client certificate without clientAuth.
        let kme = try Curl.get(alice + "/api/v1/keys/SAE-Bob/status", ca: pki.caPath, certificate: pki.kmeCertificatePath("Alice"),
                               key: pki.kmeKeyPath("Alice"), scratch: scratch)
        #expect(kme.status == 0 && kme.exitCode != 0, "\(kme)")
        passed = true
    }
}
