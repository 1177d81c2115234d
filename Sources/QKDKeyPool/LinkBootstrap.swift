import QKDCore

/// The secret a link starts from, installed at both of its ends before it ever runs (the
/// pre-shared secret every QKD link needs to authenticate its first rounds): the long-term
/// key of its transcript hash and the first keys of its pool, which pay for authentication
/// until distilled key replaces them.
///
/// In a secret run `qkdctl up` draws it from the OS CSPRNG and writes it to both ends' run
/// directories (`BootstrapFile`); in a reproducible run both ends derive it from the
/// topology's seed (`derived`), as every earlier version did. `description` never shows a bit.
public struct LinkBootstrap: Sendable, Equatable, CustomStringConvertible {
    /// Bits per pre-shared key (the distiller's key size).
    public static let keyBits = 256
    /// Pre-shared keys per fibre link.
    public static let keyCount = 256
    /// Pre-shared keys per free-space link: the pool's authentication reserve and no more, so
    /// that a satellite holds no key a relay could use before its first pass (store and forward
    /// starts from what passes distil).
    public static let freeSpaceKeyCount = KeyPool.Configuration().authenticationReserve

    /// Pre-shared keys of a link, free-space or fibre.
    public static func keyCount(freeSpace: Bool) -> Int { freeSpace ? freeSpaceKeyCount : keyCount }

    /// The 128-bit key of the transcript hash (`TranscriptHash`, GF(2^127 − 1)).
    public var authenticationKey: UInt128
    public var keys: [(id: KeyID, bits: BitVector)]

    public init(authenticationKey: UInt128, keys: [(id: KeyID, bits: BitVector)]) {
        self.authenticationKey = authenticationKey
        self.keys = keys
    }

    public static func == (a: LinkBootstrap, b: LinkBootstrap) -> Bool {
        a.authenticationKey == b.authenticationKey && a.keys.count == b.keys.count
            && zip(a.keys, b.keys).allSatisfy { $0.id == $1.id && $0.bits == $1.bits }
    }

    public var description: String { "link bootstrap (\(keys.count) pre-shared keys)" }

    /// A reproducible run's bootstrap, from the link's seed tree (`auth-key`, `psk`).
    public static func derived(linkSeeds: SeedTree, keyBits: Int = keyBits, count: Int = keyCount) -> LinkBootstrap {
        var stream = linkSeeds.stream("psk")
        let words = (keyBits + 63) / 64
        let keys = (0..<count).map { _ in
            let id = KeyID(randomHigh: stream.next(), randomLow: stream.next())
            return (id: id, bits: BitVector(words: (0..<words).map { _ in stream.next() }, count: keyBits))
        }
        var auth = linkSeeds.stream("auth-key-128")
        let (high, low) = (auth.next(), auth.next())
        return LinkBootstrap(authenticationKey: UInt128(high) << 64 | UInt128(low), keys: keys)
    }

    /// A fresh bootstrap from `random` (the OS CSPRNG in a secret run).
    public static func random(_ random: inout SecretRandom, keyBits: Int = keyBits, count: Int = keyCount) -> LinkBootstrap {
        let words = (keyBits + 63) / 64
        let keys = (0..<count).map { _ in
            let id = random.words(2)
            return (id: KeyID(randomHigh: id[0], randomLow: id[1]), bits: BitVector(words: random.words(words), count: keyBits))
        }
        let auth = random.words(2)
        return LinkBootstrap(authenticationKey: UInt128(auth[0]) << 64 | UInt128(auth[1]), keys: keys)
    }

    static let magic: [UInt8] = Array("QKDNET-BOOTSTRAP-2".utf8)

    /// The file format: magic, key bits (u32), key count (u32), authentication key (two u64,
    /// low first),
    /// then per key its ID (two u64) and its words (u64 each), all little-endian.
    public func encoded() -> [UInt8] {
        let keyBits = keys.first?.bits.count ?? LinkBootstrap.keyBits
        var out = LinkBootstrap.magic
        func put(_ v: UInt64, _ bytes: Int) { for i in 0..<bytes { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        put(UInt64(keyBits), 4)
        put(UInt64(keys.count), 4)
        put(UInt64(truncatingIfNeeded: authenticationKey), 8)
        put(UInt64(truncatingIfNeeded: authenticationKey >> 64), 8)
        for k in keys {
            put(k.id.high, 8)
            put(k.id.low, 8)
            for w in k.bits.words { put(w, 8) }
        }
        return out
    }

    /// Decodes `encoded()`; the error names what is wrong (never a key bit).
    public static func decode(_ bytes: [UInt8]) throws(BootstrapError) -> LinkBootstrap {
        guard bytes.count >= magic.count + 16, Array(bytes[0..<magic.count]) == magic else {
            throw BootstrapError("not a QKDNet link bootstrap (bad magic or too short)")
        }
        var at = magic.count
        func get(_ n: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += n
            return v
        }
        let keyBits = Int(get(4)), count = Int(get(4))
        let words = (keyBits + 63) / 64
        guard keyBits > 0, keyBits <= 1 << 16, count <= 1 << 20, bytes.count == at + 16 + count * (16 + 8 * words) else {
            throw BootstrapError("\(count) keys of \(keyBits) bits do not match the file's \(bytes.count) bytes")
        }
        let low = get(8), high = get(8)
        let authenticationKey = UInt128(high) << 64 | UInt128(low)
        var keys: [(id: KeyID, bits: BitVector)] = []
        keys.reserveCapacity(count)
        for _ in 0..<count {
            let id = KeyID(high: get(8), low: get(8))
            keys.append((id, BitVector(words: (0..<words).map { _ in get(8) }, count: keyBits)))
        }
        guard Set(keys.map(\.id)).count == keys.count else { throw BootstrapError("two pre-shared keys have the same ID") }
        return LinkBootstrap(authenticationKey: authenticationKey, keys: keys)
    }
}

/// A bootstrap that cannot be read: the message says why (never a key bit).
public struct BootstrapError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
