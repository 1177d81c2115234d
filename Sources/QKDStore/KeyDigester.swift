import Crypto
import QKDCore

/// Keyed digests of keys for audits: HMAC-SHA-256 under a per-audit salt over the key ID and
/// bits, truncated to 64 bits. Two ends holding the same key give the same digest; the digest
/// reveals nothing usable about the key (a 256-bit key cannot be searched for).
public struct KeyDigester: Sendable {
    let key: SymmetricKey

    /// Keys shorter than this are never digested for a caller: under a salt the caller chooses,
    /// the digest of an 8- or 16-bit key is an oracle (2^8 or 2^16 guesses find the key).
    /// 128 bits cannot be searched.
    public static let minimumBits = 128

    public init(salt: UInt64) {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: salt.littleEndian) { bytes += $0 }
        key = SymmetricKey(data: bytes)
    }

    public func digest(id: KeyID, bits: BitVector) -> UInt64 {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: id.bytes)
        mac.update(data: KeyStore.encodeBits(bits))
        return mac.finalize().withUnsafeBytes { raw in
            raw.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
        }
    }

    public static func digest(id: KeyID, bits: BitVector, salt: UInt64) -> UInt64 {
        KeyDigester(salt: salt).digest(id: id, bits: bits)
    }
}
