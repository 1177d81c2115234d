import Crypto
import Foundation
import QKDHybrid

/// Issue 19's costs on one core: ML-KEM-768 encapsulations and decapsulations (with the
/// confirmation tag) per second, and the HKDF-SHA-256 combiner per key.
enum HybridBenchmarks {
    static func run(_ report: inout BenchReport) throws {
        let key = try MLKEM768.PrivateKey()
        let publicKey = Array(key.publicKey.rawRepresentation)
        let context = Array("SAE-Beijing>SAE-Hefei".utf8)
        var encaps: [Double] = [], decaps: [Double] = [], combines: [Double] = []
        for _ in 0..<5 {
            let n = 500
            var sent: [KEMExchange.Encapsulated] = []
            sent.reserveCapacity(n)
            var start = Date()
            for _ in 0..<n { sent.append(try KEMExchange.encapsulate(to: publicKey, context: context)) }
            encaps.append(Double(n) / Date().timeIntervalSince(start))
            start = Date()
            for s in sent { _ = try KEMExchange.decapsulate(s.ciphertext, tag: s.tag, context: context, with: key) }
            decaps.append(Double(n) / Date().timeIntervalSince(start))
            let qkd = [UInt8](repeating: 7, count: 32)
            start = Date()
            for (i, s) in sent.enumerated() {
                _ = HybridCombiner.combine(qkd: qkd, pqc: s.secret, context: HybridCombiner.context(master: "SAE-Beijing", slave: "SAE-Hefei",
                                                                                                    keyID: "\(i)", ciphertext: s.ciphertext), length: 32)
            }
            combines.append(Double(n) / Date().timeIntervalSince(start))
        }
        report.add("hybrid: ML-KEM-768 encapsulations", stats(encaps), unit: "per s, one core", target: "reported (issue 19)")
        report.add("hybrid: ML-KEM-768 decapsulations", stats(decaps), unit: "per s, one core", target: "reported")
        report.add("hybrid: HKDF combiner", stats(combines), unit: "keys per s, one core", target: "reported")
    }
}
