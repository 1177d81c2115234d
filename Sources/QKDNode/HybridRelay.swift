import QKDCore
import QKDHybrid
import QKDKeyPool
import QKDTopology

/// What a hybrid key adds to a relayed one, at the two KMEs (docs/security.md): the master's
/// KME encapsulates an ML-KEM-768 secret to the slave's KME (`seal`); the capsule (ciphertext
/// and confirmation tag) travels in the relay's `RelayApplication`; the slave's KME opens it
/// before it acknowledges the relay (`open`: an altered capsule refuses the relay, so no key is
/// delivered); both ends then turn each relayed QKD key into K = HKDF(K_QKD ‖ K_PQC, context)
/// (`combine`). The trusted nodes in between see the QKD key and the capsule, never K_PQC.
enum HybridRelay {
    /// What the confirmation tag binds the capsule to: the pair of SAEs.
    static func tagContext(master: String, slave: String) -> [UInt8] {
        HybridCombiner.context(master: master, slave: slave, keyID: "", ciphertext: [])
    }

    /// A capsule for `destination`'s KME and the secret it carries.
    static func seal(_ kem: KMEKeys, destination: NodeID, master: String, slave: String) throws(KEMExchange.Refusal) -> (capsule: [UInt8], secret: [UInt8]) {
        guard let publicKey = kem.publicKey(of: destination.rawValue) else {
            throw KEMExchange.Refusal("no ML-KEM-768 public key of KME \(destination)")
        }
        let sent = try KEMExchange.encapsulate(to: publicKey, context: tagContext(master: master, slave: slave))
        return (sent.ciphertext + sent.tag, sent.secret)
    }

    /// The secret a capsule carries for this KME, or why it is refused.
    static func open(_ capsule: [UInt8], _ kem: KMEKeys, master: String, slave: String) throws(KEMExchange.Refusal) -> [UInt8] {
        guard capsule.count == KEMExchange.ciphertextBytes + 32 else {
            throw KEMExchange.Refusal("an ML-KEM capsule of \(capsule.count) bytes, not \(KEMExchange.ciphertextBytes + 32)")
        }
        return try KEMExchange.decapsulate(Array(capsule.prefix(KEMExchange.ciphertextBytes)), tag: Array(capsule.suffix(32)),
                                           context: tagContext(master: master, slave: slave), with: kem.privateKey)
    }

    /// Each relayed key combined with the secret, bound to its SAEs, its key ID and the
    /// ciphertext; the same length.
    static func combine(_ keys: [ApplicationKey], secret: [UInt8], capsule: [UInt8]) -> [ApplicationKey] {
        let ciphertext = Array(capsule.prefix(KEMExchange.ciphertextBytes))
        return keys.map { k in
            let context = HybridCombiner.context(master: k.master, slave: k.slave, keyID: k.id.uuidString, ciphertext: ciphertext)
            let bytes = HybridCombiner.combine(qkd: k.bits.bytes, pqc: secret, context: context, length: (k.bits.count + 7) / 8)
            return ApplicationKey(id: k.id, master: k.master, slave: k.slave, bits: BitVector(bytes: bytes, count: k.bits.count), path: k.path,
                                  kind: "hybrid")
        }
    }
}
