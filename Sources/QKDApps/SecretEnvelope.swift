import Crypto
import Foundation

/// A file sealed with QKD keys for one receiver: one-time pad and a one-time MAC key, both
/// taken with ETSI GS QKD 014 `enc_keys`, and everything the receiver needs to take the same
/// keys with `dec_keys` (their IDs), never a key.
///
/// - Encryption: the ciphertext is the plaintext XOR the pad, the pad the concatenation of the
///   pad keys' bits in the order listed (Vernam 1926; perfectly secret when the pad is uniform,
///   as long as the message and used once: Shannon, Bell Syst. Tech. J. 28, 656 (1949)).
/// - Authentication: HMAC-SHA-256 (RFC 2104, FIPS 198-1) under a fresh 256-bit QKD key used for
///   this envelope only, over the header (every field but the tag, canonical JSON) and the
///   ciphertext: an envelope or ciphertext changed in transit, or addressed to another SAE, is
///   refused before any byte is decrypted.
///
/// Pure: sealing and opening take the keys as arguments.
public struct SecretEnvelope: Codable, Sendable, Equatable {
    public static let algorithm = "otp+hmac-sha256"
    /// The largest file a one-time pad seals here (8 Mbit of key).
    public static let maximumBytes = 1 << 20

    public var version: Int
    public var algorithm: String
    public var master: String
    public var slave: String
    /// The file's name (no directory), as the receiver writes it.
    public var name: String
    public var size: Int
    public var padKeyIDs: [String]
    public var macKeyID: String
    /// The ciphertext, base64.
    public var ciphertext: String
    /// The HMAC tag, base64.
    public var tag: String

    enum CodingKeys: String, CodingKey {
        case version, algorithm, name, size, ciphertext, tag
        case master = "master_SAE_ID", slave = "slave_SAE_ID", padKeyIDs = "pad_key_IDs", macKeyID = "mac_key_ID"
    }

    /// Why an envelope is refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// Pad bytes `size` needs, in keys of `keyBytes`.
    public static func padKeys(for size: Int, keyBytes: Int) -> Int { (size + keyBytes - 1) / keyBytes }

    /// Seals `plaintext` (named `name`) from `master` to `slave` with `pad` (at least as many
    /// bytes as the plaintext, in key order) and `macKey` (32 bytes).
    public static func seal(_ plaintext: [UInt8], name: String, master: String, slave: String,
                            pad: [(id: String, key: [UInt8])], mac: (id: String, key: [UInt8])) throws(Refusal) -> SecretEnvelope {
        guard plaintext.count <= maximumBytes else { throw Refusal("\(name): \(plaintext.count) bytes exceed the one-time pad's \(maximumBytes)") }
        guard mac.key.count == 32 else { throw Refusal("the MAC key has \(mac.key.count * 8) bits, not 256") }
        let padBytes = pad.flatMap(\.key)
        guard padBytes.count >= plaintext.count else {
            throw Refusal("\(name): \(padBytes.count) bytes of pad for \(plaintext.count) bytes")
        }
        let cipher = zip(plaintext, padBytes).map { $0 ^ $1 }
        var envelope = SecretEnvelope(version: 1, algorithm: algorithm, master: master, slave: slave, name: name, size: plaintext.count,
                                      padKeyIDs: pad.map(\.id), macKeyID: mac.id, ciphertext: Data(cipher).base64EncodedString(), tag: "")
        envelope.tag = Data(envelope.mac(cipher, key: mac.key)).base64EncodedString()
        return envelope
    }

    /// Checks the envelope's form and addressee before any key is taken: its ciphertext bytes.
    public func check(slave expected: String) throws(Refusal) -> [UInt8] {
        guard version == 1, algorithm == Self.algorithm else { throw Refusal("\(name): unknown version \(version) or algorithm '\(algorithm)'") }
        guard slave == expected else { throw Refusal("\(name): addressed to '\(slave)', not '\(expected)'") }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { throw Refusal("file name '\(name)' is not a plain name") }
        guard let cipher = Data(base64Encoded: ciphertext), cipher.count == size, size <= Self.maximumBytes else {
            throw Refusal("\(name): the ciphertext is not \(size) bytes of base64")
        }
        guard !padKeyIDs.isEmpty || size == 0, Set(padKeyIDs).count == padKeyIDs.count, !padKeyIDs.contains(macKeyID) else {
            throw Refusal("\(name): its key IDs repeat")
        }
        return Array(cipher)
    }

    /// The plaintext, given the keys named by `padKeyIDs` (in order) and `macKeyID`; refused,
    /// with nothing decrypted, if the tag does not verify.
    public func open(pad: [[UInt8]], macKey: [UInt8], slave expected: String) throws(Refusal) -> [UInt8] {
        let cipher = try check(slave: expected)
        guard let tagBytes = Data(base64Encoded: tag), tagBytes.count == 32 else { throw Refusal("\(name): the tag is not 32 bytes of base64") }
        // Constant-time verification (swift-crypto's isValidAuthenticationCode).
        guard HMAC<SHA256>.isValidAuthenticationCode(tagBytes, authenticating: authenticated(cipher), using: SymmetricKey(data: macKey)) else {
            throw Refusal("\(name): authentication failed (the envelope or its ciphertext was changed, or the keys are not its keys)")
        }
        let padBytes = pad.flatMap { $0 }
        guard padBytes.count >= cipher.count else { throw Refusal("\(name): \(padBytes.count) bytes of pad for \(cipher.count) bytes") }
        return zip(cipher, padBytes).map { $0 ^ $1 }
    }

    /// What the tag authenticates: the header (this envelope with an empty tag and no
    /// ciphertext, as sorted-key JSON), length-prefixed, then the ciphertext.
    func authenticated(_ cipher: [UInt8]) -> Data {
        var header = self
        header.tag = ""
        header.ciphertext = ""
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let headerBytes = (try? encoder.encode(header)) ?? Data()
        return Data(withUnsafeBytes(of: UInt64(headerBytes.count).bigEndian, Array.init)) + headerBytes + Data(cipher)
    }

    /// HMAC-SHA-256 of `authenticated(cipher)` under `key`.
    func mac(_ cipher: [UInt8], key: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: authenticated(cipher), using: SymmetricKey(data: key)))
    }
}
