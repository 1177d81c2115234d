import Crypto
import Foundation

/// The combiner of a hybrid key: K = HKDF-SHA-256(salt, Z′ = K_QKD ‖ K_PQC, info = context), the
/// two-step (extract-then-expand) key derivation of NIST SP 800-56C Rev. 2 (section 5, with HMAC
/// as the extraction and expansion PRF; HKDF as RFC 5869 specifies it), its shared secret the
/// concatenation Z′ = Z ‖ T that section 2 allows (Z the QKD key, T the ML-KEM-768 shared
/// secret). A PRF keyed by the extraction of Z′ stays pseudorandom while either part is secret
/// and uniform, which is what a hybrid key needs (SP 800-227, section 4.6, on combining KEM
/// outputs with other shared secrets). The context binds the key to its SAEs, its key ID and
/// the ML-KEM ciphertext (so that a ciphertext cannot be moved to another key).
public enum HybridCombiner {
    /// The salt of the extraction step: a fixed, public label (SP 800-56C Rev. 2 allows a
    /// constant salt).
    public static let salt = Array("QKDNet hybrid key v1".utf8)

    /// HKDF-SHA-256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes.
    public static func hkdf(inputKeyMaterial: [UInt8], salt: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: inputKeyMaterial), salt: salt, info: info,
                                          outputByteCount: length)
        return key.withUnsafeBytes { Array($0) }
    }

    /// The fixed information of one key: its fields each length-prefixed (so no two contexts
    /// concatenate alike), the ciphertext by its SHA-256.
    public static func context(master: String, slave: String, keyID: String, ciphertext: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for field in [Array("hybrid".utf8), Array(master.utf8), Array(slave.utf8), Array(keyID.utf8), Array(SHA256.hash(data: ciphertext))] {
            out += withUnsafeBytes(of: UInt32(field.count).bigEndian, Array.init) + field
        }
        return out
    }

    /// K of `length` bytes from the QKD key and the ML-KEM shared secret.
    public static func combine(qkd: [UInt8], pqc: [UInt8], context: [UInt8], length: Int) -> [UInt8] {
        hkdf(inputKeyMaterial: qkd + pqc, salt: salt, info: context, length: length)
    }
}

/// ML-KEM-768 (FIPS 203) between two KMEs: the master's KME encapsulates to the slave's KME's
/// public key; the ciphertext travels with the key request; the slave's KME decapsulates. A
/// key-confirmation tag (HMAC-SHA-256 under a key derived from the shared secret, over the
/// ciphertext and the context) travels with it: ML-KEM's implicit rejection turns an altered
/// ciphertext into a different secret without an error, and the tag turns that into a refusal.
public enum KEMExchange {
    public static let ciphertextBytes = 1088
    public static let publicKeyBytes = 1184

    /// What the master's KME sends: the ciphertext and the confirmation tag; it keeps `secret`.
    public struct Encapsulated: Sendable, Equatable {
        public var ciphertext: [UInt8]
        public var tag: [UInt8]
        public var secret: [UInt8]
    }

    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// Encapsulates to `publicKey` (its raw representation) for `context`.
    public static func encapsulate(to publicKey: [UInt8], context: [UInt8]) throws(Refusal) -> Encapsulated {
        let key: MLKEM768.PublicKey
        do { key = try MLKEM768.PublicKey(rawRepresentation: publicKey) } catch {
            throw Refusal("the ML-KEM-768 public key is malformed (\(publicKey.count) bytes, expected \(publicKeyBytes))")
        }
        let result: KEM.EncapsulationResult
        do { result = try key.encapsulate() } catch { throw Refusal("ML-KEM-768 encapsulation failed: \(error)") }
        let secret = result.sharedSecret.withUnsafeBytes { Array($0) }
        let ciphertext = Array(result.encapsulated)
        return Encapsulated(ciphertext: ciphertext, tag: tag(secret: secret, ciphertext: ciphertext, context: context), secret: secret)
    }

    /// The shared secret, or a refusal if the ciphertext is malformed or its tag does not verify.
    public static func decapsulate(_ ciphertext: [UInt8], tag: [UInt8], context: [UInt8], with privateKey: MLKEM768.PrivateKey) throws(Refusal) -> [UInt8] {
        guard ciphertext.count == ciphertextBytes else { throw Refusal("the ML-KEM-768 ciphertext has \(ciphertext.count) bytes, not \(ciphertextBytes)") }
        let secret: [UInt8]
        do { secret = try privateKey.decapsulate(ciphertext).withUnsafeBytes { Array($0) } } catch {
            throw Refusal("ML-KEM-768 decapsulation failed: \(error)")
        }
        let expected = KEMExchange.tag(secret: secret, ciphertext: ciphertext, context: context)
        // Constant-time comparison.
        guard tag.count == expected.count, zip(tag, expected).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else {
            throw Refusal("the ML-KEM-768 ciphertext or its confirmation tag was altered")
        }
        return secret
    }

    /// HMAC-SHA-256 under HKDF(secret, "confirm") of the ciphertext and the context.
    static func tag(secret: [UInt8], ciphertext: [UInt8], context: [UInt8]) -> [UInt8] {
        let key = HybridCombiner.hkdf(inputKeyMaterial: secret, salt: HybridCombiner.salt, info: Array("confirm".utf8), length: 32)
        return Array(HMAC<SHA256>.authenticationCode(for: ciphertext + context, using: SymmetricKey(data: key)))
    }
}
