import Foundation
import QKDCore
import QKDKeyPool
import QKDLaunch
import QKDStore

/// Issue 6's ETSI GS QKD 014 numbers on line-3 (release build, quantum layer slowed 10^4 times
/// so the KME is measured alone): `enc_keys` latency at Alice for the neighbouring node's SAE
/// (SAE-Relay: a one-hop relay per request), `dec_keys` latency at the slave's KME, and the
/// requests per second one KME sustains over several kept-alive mutual-TLS connections. The
/// Alice-Relay link starts with 200,000 keys in both stores so the pool never runs dry.
enum KMEBenchmarks {
    static func run(_ report: inout BenchReport, topologies: String, binDirectory: String) throws {
        let dir = "/tmp/qkdnet-bench-kme-\(getpid())"
        let topology = "\(dir)-line-3.yaml"
        let text = try String(contentsOfFile: "\(topologies)/line-3.yaml", encoding: .utf8)
            .replacingOccurrences(of: "time_scale: 1.0", with: "time_scale: 0.0001")
            .replacingOccurrences(of: "defaults:\n", with: "defaults:\n  max_key_count: 600000\n")
        try text.write(toFile: topology, atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: topology)
        }
        var network = try Network.up(topologyPath: topology, runDir: dir, binDirectory: binDirectory)
        network.down()
        var g = Xoshiro256(seed: 14)
        let batch = PoolBenchmarks.keys(200_000, &g)
        for node in ["Alice", "Relay"] {
            let store = try KeyStore.open(directory: network.layout.storeDirectory, node: node)
            var pool = KeyPool(configuration: .init(maxKeyCount: 1 << 30))
            try pool.deposit(batch, pending: false)
            try store.apply(pool.drainJournal(), link: "Alice-Relay")
            try store.close()
        }
        network = try Network.open(runDir: dir)
        defer { network.down() }
        var pids: [NodeID: Int32] = [:]
        for node in network.topology.nodes { pids[node.id] = try network.startNode(node.id) }
        try network.waitReady(pids, timeoutSeconds: 60)
        let alice = NodeID("Alice"), relay = NodeID("Relay")
        let deadline = Date(timeIntervalSinceNow: 60)
        while Date() < deadline, (try? network.routes(from: alice, to: relay, bits: 256 * 1000).get().path) == nil { usleep(50_000) }
        let urls = Dictionary(uniqueKeysWithValues: network.status().nodes.compactMap { n in n.kmeURL.map { (n.id, $0) } })
        let pki = PKI(runDirectory: dir)
        func endpoint(_ node: String) -> (host: String, port: Int) {
            let hostPort = (urls[node] ?? "").replacingOccurrences(of: "https://", with: "").split(separator: ":")
            return (String(hostPort.first ?? "127.0.0.1"), Int(hostPort.last ?? "0") ?? 0)
        }
        let a = endpoint("Alice"), r = endpoint("Relay")

        let result = try blocking { () async throws -> (enc: [Double], dec: [Double], rate: Double, failures: Int) in
            let master = try await HTTPSConnection.connect(host: a.host, port: a.port, ca: pki.caPath,
                                                          certificate: pki.saeCertificatePath("SAE-Alice"), key: pki.saeKeyPath("SAE-Alice"))
            let slave = try await HTTPSConnection.connect(host: r.host, port: r.port, ca: pki.caPath,
                                                         certificate: pki.saeCertificatePath("SAE-Relay"), key: pki.saeKeyPath("SAE-Relay"))
            var enc: [Double] = [], dec: [Double] = [], failures = 0
            for i in 0..<420 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let got = try await master.request("/api/v1/keys/SAE-Relay/enc_keys")
                let t1 = DispatchTime.now().uptimeNanoseconds
                guard got.status == 200, let id = keyID(got.body) else { failures += 1; continue }
                let back = try await slave.request("/api/v1/keys/SAE-Alice/dec_keys?key_ID=\(id)")
                let t2 = DispatchTime.now().uptimeNanoseconds
                if back.status != 200 { failures += 1 }
                if i >= 20 {  // warm-up excluded
                    enc.append(Double(t1 - t0) / 1e6)
                    dec.append(Double(t2 - t1) / 1e6)
                }
            }
            await master.close()
            await slave.close()
            // Throughput: 8 connections, each sending requests back to back for 5 s.
            let seconds = 5.0
            let counts = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let c = try await HTTPSConnection.connect(host: a.host, port: a.port, ca: pki.caPath,
                                                                 certificate: pki.saeCertificatePath("SAE-Alice"), key: pki.saeKeyPath("SAE-Alice"))
                        let end = Date(timeIntervalSinceNow: seconds)
                        var ok = 0, bad = 0
                        while Date() < end {
                            if try await c.request("/api/v1/keys/SAE-Relay/enc_keys").status == 200 { ok += 1 } else { bad += 1 }
                        }
                        await c.close()
                        return (ok, bad)
                    }
                }
                var total = (0, 0)
                for try await (ok, bad) in group { total = (total.0 + ok, total.1 + bad) }
                return total
            }
            return (enc, dec, Double(counts.0) / seconds, failures + counts.1)
        }
        report.add("kme.enc_keys_neighbour_ms", stats(result.enc), unit: "ms", target: "p50 ≤ 5 ms (GET enc_keys, 256 bits, 1-hop relay)")
        report.add("kme.dec_keys_ms", stats(result.dec), unit: "ms", target: "(GET dec_keys at the slave's KME)")
        report.add("kme.enc_keys_per_s", stats([result.rate]), unit: "req/s", target: "≥ 1000 (one KME, 8 connections)")
        print("  failed requests: \(result.failures)")
    }

    static func keyID(_ body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let keys = object["keys"] as? [[String: Any]] else { return nil }
        return keys.first?["key_ID"] as? String
    }

    /// Runs async work from the synchronous benchmark driver.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, any Error>?
        Task {
            do { result = .success(try await body()) } catch { result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try result!.get()
    }
}
