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
///
/// Then the KME under abuse (issue 17): a hostile SAE at Alice (SAE-Mallory) sends 10,000
/// maximal `enc_keys` requests (128 keys of 8192 bits, half relayed to SAE-Relay, half for
/// SAE-Alice at the same node) over 16 connections, from a process of its own, while
/// SAE-Alice takes its keys as before:
/// Alice's resident memory (peak), the victim's `enc_keys` latency against the idle figure,
/// the hostile requests' answers, and whether every victim key arrived intact at its slave.
enum KMEBenchmarks {
    static func run(_ report: inout BenchReport, topologies: String, binDirectory: String) throws {
        let dir = "/tmp/qkdnet-bench-kme-\(getpid())"
        let topology = "\(dir)-line-3.yaml"
        let text = try String(contentsOfFile: "\(topologies)/line-3.yaml", encoding: .utf8)
            .replacingOccurrences(of: "time_scale: 1.0", with: "time_scale: 0.0001")
            .replacingOccurrences(of: "defaults:\n", with: "defaults:\n  max_key_count: 600000\n")
            .replacingOccurrences(of: "saes:\n", with: "saes:\n  - { id: SAE-Mallory, node: Alice }\n")
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
                guard got.status == 200, let id = firstKey(got.body)?.id else { failures += 1; continue }
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
        try abuse(&report, idle: result.enc, alice: pids[alice] ?? 0, a: a, r: r, pki: pki, binDirectory: binDirectory)
    }

    /// The abuse phase (see the type's comment). The hostile SAE runs in a process of its own
    /// (`qkd-bench --kme-flood`), as an attacker would: in the benchmark's own process its 16
    /// connections would share the victim client's event loops and task pool, and the victim's
    /// latency would measure that client, not the KME.
    static func abuse(_ report: inout BenchReport, idle: [Double], alice pid: Int32, a: (host: String, port: Int), r: (host: String, port: Int),
                      pki: PKI, binDirectory: String) throws {
        let rssBefore = Processes.residentBytes(pid) ?? 0
        let peak = PeakSampler(pid: pid)
        let sampler = Thread { peak.run() }
        sampler.start()
        defer { peak.stop() }
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: "\(binDirectory)/qkd-bench")
        flood.arguments = ["--kme-flood", a.host, "\(a.port)", pki.caPath, pki.saeCertificatePath("SAE-Mallory"), pki.saeKeyPath("SAE-Mallory")]
        let out = Pipe()
        flood.standardOutput = out
        try flood.run()
        defer { if flood.isRunning { kill(flood.processIdentifier, SIGKILL) } }
        let lines = LineReader(out.fileHandleForReading)
        // The victim starts once the flood runs (its 16 TLS handshakes done).
        guard lines.next()?.hasPrefix("flooding") == true else { throw BenchError("the KME flood did not start") }
        let outcome = try blocking { () async throws -> (victim: [Double], victimFailures: Int, altered: Int) in
            let master = try await HTTPSConnection.connect(host: a.host, port: a.port, ca: pki.caPath,
                                                          certificate: pki.saeCertificatePath("SAE-Alice"), key: pki.saeKeyPath("SAE-Alice"))
            let slave = try await HTTPSConnection.connect(host: r.host, port: r.port, ca: pki.caPath,
                                                         certificate: pki.saeCertificatePath("SAE-Relay"), key: pki.saeKeyPath("SAE-Relay"))
            var victim: [Double] = [], failures = 0, altered = 0, firstFailure: String?
            for _ in 0..<1000 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let got = try await master.request("/api/v1/keys/SAE-Relay/enc_keys")
                let t1 = DispatchTime.now().uptimeNanoseconds
                guard got.status == 200, let id = firstKey(got.body)?.id else {
                    failures += 1
                    firstFailure = firstFailure ?? "\(got.status) \(String(decoding: got.body.prefix(300), as: UTF8.self))"
                    continue
                }
                victim.append(Double(t1 - t0) / 1e6)
                let back = try await slave.request("/api/v1/keys/SAE-Alice/dec_keys?key_ID=\(id)")
                if back.status != 200 { failures += 1 } else if firstKey(back.body)?.key != firstKey(got.body)?.key { altered += 1 }
            }
            await master.close()
            await slave.close()
            if let firstFailure { print("  first victim failure: \(firstFailure)") }
            return (victim, failures, altered)
        }
        // The flood must still have been running when the victim finished, or it measured nothing.
        let stillFlooding = flood.isRunning
        var summary = ""
        while let line = lines.next() { summary = line }
        flood.waitUntilExit()
        peak.stop()
        guard flood.terminationStatus == 0, summary.hasPrefix("flooded") else { throw BenchError("the KME flood failed: \(summary)") }
        let mib = { (bytes: Int) in Double(bytes) / 1_048_576 }
        let idleP50 = stats(idle).p50, underP50 = stats(outcome.victim).p50
        report.add("kme.abuse_victim_enc_keys_ms", stats(outcome.victim), unit: "ms",
                   target: "p50 ≤ 2 × idle (\(String(format: "%.2f", idleP50)) ms): now \(String(format: "%.2f", underP50 / max(idleP50, 1e-9)))×")
        let after = Processes.residentBytes(pid) ?? 0
        report.add("kme.abuse_rss_peak_mib", stats([mib(peak.value)]), unit: "MiB",
                   target: String(format: "bounded: Alice before %.0f MiB, after %.0f MiB", mib(rssBefore), mib(after)))
        print("  hostile \(summary); flood still running when the victim finished: \(stillFlooding); victim failures: \(outcome.victimFailures), victim keys altered: \(outcome.altered)")
    }

    /// `qkd-bench --kme-flood HOST PORT CA CERT KEY`: the hostile SAE. 10,000 maximal
    /// `enc_keys` requests (128 keys of 8192 bits; half for a slave at another node, half for
    /// one at the same node) over 16 connections, each sent as soon as the last is answered.
    /// Prints "flooding" once every connection is up, then "flooded" with the answers by status.
    static func flood(_ args: [String]) throws {
        guard args.count == 5, let port = Int(args[1]) else { throw BenchError("usage: qkd-bench --kme-flood HOST PORT CA CERT KEY") }
        let host = args[0], ca = args[2], certificate = args[3], key = args[4]
        let (statuses, seconds) = try blocking { () async throws -> ([Int: Int], Double) in
            var connections: [HTTPSConnection] = []
            for _ in 0..<16 { connections.append(try await HTTPSConnection.connect(host: host, port: port, ca: ca, certificate: certificate, key: key)) }
            FileHandle.standardOutput.write(Data("flooding\n".utf8))  // unbuffered: the parent waits for it
            let began = Date()
            let all = try await withThrowingTaskGroup(of: [Int: Int].self) { group in
                for (c, conn) in connections.enumerated() {
                    group.addTask {
                        var statuses: [Int: Int] = [:]
                        for i in stride(from: c, to: 10_000, by: 16) {
                            let slave = i % 2 == 0 ? "SAE-Relay" : "SAE-Alice"
                            statuses[try await conn.request("/api/v1/keys/\(slave)/enc_keys?number=128&size=8192").status, default: 0] += 1
                        }
                        await conn.close()
                        return statuses
                    }
                }
                var all: [Int: Int] = [:]
                for try await s in group { all.merge(s, uniquingKeysWith: +) }
                return all
            }
            return (all, Date().timeIntervalSince(began))
        }
        let answers = statuses.sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
        print(String(format: "flooded in %.1f s: %@", seconds, answers))
    }

    /// Lines of a child's output, read as they come.
    final class LineReader {
        let handle: FileHandle
        private var buffer: [UInt8] = []
        init(_ handle: FileHandle) { self.handle = handle }

        /// The next line, or nil at the end of the output.
        func next() -> String? {
            while true {
                if let i = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<i], as: UTF8.self)
                    buffer.removeSubrange(...i)
                    return line
                }
                let chunk = handle.availableData
                if chunk.isEmpty {
                    defer { buffer = [] }
                    return buffer.isEmpty ? nil : String(decoding: buffer, as: UTF8.self)
                }
                buffer += chunk
            }
        }
    }

    /// The first key of an ETSI 014 key container: its ID and its base64 value.
    static func firstKey(_ body: [UInt8]) -> (id: String, key: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let first = (object["keys"] as? [[String: Any]])?.first,
              let id = first["key_ID"] as? String, let key = first["key"] as? String else { return nil }
        return (id, key)
    }

    /// The largest resident size a process reaches while `run` samples it (every 20 ms).
    final class PeakSampler: @unchecked Sendable {
        let pid: Int32
        private let lock = NSLock()
        private var peak = 0
        private var stopped = false

        init(pid: Int32) { self.pid = pid }

        var value: Int { lock.withLock { peak } }
        func stop() { lock.withLock { stopped = true } }

        func run() {
            while !lock.withLock({ stopped }) {
                let now = Processes.residentBytes(pid) ?? 0
                lock.withLock { peak = max(peak, now) }
                usleep(20_000)
            }
        }
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
