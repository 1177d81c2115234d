import Crypto
import Foundation
import QKDHybrid
import QKDTopology
import Testing

/// The hybrid key's parts: HKDF-SHA-256 against RFC 5869's published vectors, the combiner's
/// dependence on each input, and ML-KEM-768 between two KMEs with its confirmation tag.
@Suite struct HybridKeyTests {
    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    /// RFC 5869, appendix A, test cases 1 and 3 (SHA-256).
    @Test func hkdfMatchesRFC5869() {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        #expect(HybridCombiner.hkdf(inputKeyMaterial: ikm, salt: Self.hex("000102030405060708090a0b0c"),
                                    info: Self.hex("f0f1f2f3f4f5f6f7f8f9"), length: 42)
                == Self.hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"))
        #expect(HybridCombiner.hkdf(inputKeyMaterial: ikm, salt: [], info: [], length: 42)
                == Self.hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"))
    }

    @Test func theHybridKeyDependsOnBothSecretsAndItsContext() {
        let qkd = [UInt8](repeating: 0x11, count: 32), pqc = [UInt8](repeating: 0x22, count: 32)
        let context = HybridCombiner.context(master: "SAE-Beijing", slave: "SAE-Hefei", keyID: "k-1", ciphertext: [1, 2, 3])
        let k = HybridCombiner.combine(qkd: qkd, pqc: pqc, context: context, length: 32)
        #expect(k.count == 32)
        // The combiner is HKDF over Z' = K_QKD || K_PQC with the fixed salt (SP 800-56C Rev. 2).
        #expect(k == HybridCombiner.hkdf(inputKeyMaterial: qkd + pqc, salt: HybridCombiner.salt, info: context, length: 32))
        var otherQKD = qkd
        otherQKD[0] ^= 1
        var otherPQC = pqc
        otherPQC[31] ^= 0x80
        #expect(HybridCombiner.combine(qkd: otherQKD, pqc: pqc, context: context, length: 32) != k)
        #expect(HybridCombiner.combine(qkd: qkd, pqc: otherPQC, context: context, length: 32) != k)
        for other in [HybridCombiner.context(master: "SAE-Beijing", slave: "SAE-Hefei", keyID: "k-2", ciphertext: [1, 2, 3]),
                      HybridCombiner.context(master: "SAE-Beijing", slave: "SAE-Hefei", keyID: "k-1", ciphertext: [1, 2, 4]),
                      HybridCombiner.context(master: "SAE-Beijin", slave: "gSAE-Hefei", keyID: "k-1", ciphertext: [1, 2, 3])] {
            #expect(HybridCombiner.combine(qkd: qkd, pqc: pqc, context: other, length: 32) != k)
        }
        // The same inputs, the same key; a longer output extends it.
        #expect(HybridCombiner.combine(qkd: qkd, pqc: pqc, context: context, length: 64).prefix(32) == k[...])
    }

    @Test func mlkem768RoundTripsBetweenTwoKMEsAndRefusesAnAlteredCiphertext() throws {
        let slaveKME = try MLKEM768.PrivateKey()
        let publicKey = Array(slaveKME.publicKey.rawRepresentation)
        #expect(publicKey.count == KEMExchange.publicKeyBytes)
        let context = Array("SAE-Beijing>SAE-Hefei".utf8)
        let sent = try KEMExchange.encapsulate(to: publicKey, context: context)
        #expect(sent.ciphertext.count == KEMExchange.ciphertextBytes && sent.secret.count == 32)
        #expect(try KEMExchange.decapsulate(sent.ciphertext, tag: sent.tag, context: context, with: slaveKME) == sent.secret)
        // Two encapsulations to one key: two secrets.
        #expect(try KEMExchange.encapsulate(to: publicKey, context: context).secret != sent.secret)

        func refusal(_ ciphertext: [UInt8], _ tag: [UInt8], _ context: [UInt8], _ key: MLKEM768.PrivateKey) -> String? {
            do {
                _ = try KEMExchange.decapsulate(ciphertext, tag: tag, context: context, with: key)
                return nil
            } catch {
                return error.message
            }
        }
        var altered = sent.ciphertext
        altered[500] ^= 0x04
        // ML-KEM rejects implicitly (another secret, no error): the tag makes it a refusal.
        #expect(refusal(altered, sent.tag, context, slaveKME)?.contains("altered") == true)
        var badTag = sent.tag
        badTag[0] ^= 1
        #expect(refusal(sent.ciphertext, badTag, context, slaveKME)?.contains("altered") == true)
        #expect(refusal(sent.ciphertext, sent.tag, Array("SAE-Eve>SAE-Hefei".utf8), slaveKME)?.contains("altered") == true)
        #expect(refusal(sent.ciphertext, sent.tag, context, try MLKEM768.PrivateKey())?.contains("altered") == true, "another KME's key")
        #expect(refusal(Array(sent.ciphertext.prefix(100)), sent.tag, context, slaveKME)?.contains("1088") == true)
        #expect(throws: KEMExchange.Refusal.self) { try KEMExchange.encapsulate(to: Array(publicKey.prefix(10)), context: context) }
    }

    @Test func keyPoliciesParseAsTheIssueNamesThem() {
        #expect(["qkd", "hybrid", "pqc", "multipath", "multipath(3)"].compactMap(KeyPolicy.init).map(\.description)
                == ["qkd", "hybrid", "pqc", "multipath(2)", "multipath(3)"])
        for bad in ["QKD", "multipath(1)", "multipath(9)", "multipath(x)", ""] { #expect(KeyPolicy(bad) == nil, "\(bad)") }
        #expect(KeyPolicy.multipath(4).kind == "multipath" && KeyPolicy.hybrid.kind == "hybrid")
    }
}
