import QKDCore

/// Bob → Alice when Cascade is over: two independent universal hashes of his corrected key
/// under keys he drew just now, the seeds of privacy amplification and of the key IDs (drawn after the
/// quantum phase from secret randomness, so that they are independent of everything Eve held
/// while photons flew), the ID of the pool key whose bits pad the round's two tags, and his
/// Wegman–Carter tag over the round's transcript (these fields included).
public struct ReconciliationDone: Equatable, Sendable {
    public var block: UInt64
    public var verificationHash: UInt64
    public var verificationHash2: UInt64
    /// The keys of the two verification hashes (fresh secret draws per block).
    public var verificationKey: UInt64
    public var verificationKey2: UInt64
    public var authenticationKey: KeyID
    /// Earlier blocks whose result Bob accepted since his previous `Done`: Alice may commit them.
    public var acknowledged: [UInt64]
    /// Seed of the block's key IDs.
    public var keyIDSeed: UInt64
    /// The Toeplitz matrix of privacy amplification: n + m − 1 uniformly random bits (none
    /// when the block yields no key), as words.
    public var privacySeedBits: UInt32
    public var privacySeed: [UInt64]
    /// The 128-bit Wegman–Carter tag (low 127 bits used: an element of GF(2^127 − 1)).
    public var tag: UInt128

    public init(block: UInt64, verificationHash: UInt64, verificationHash2: UInt64, verificationKey: UInt64, verificationKey2: UInt64,
                authenticationKey: KeyID, acknowledged: [UInt64], keyIDSeed: UInt64, privacySeedBits: UInt32, privacySeed: [UInt64],
                tag: UInt128) {
        self.block = block
        self.verificationHash = verificationHash
        self.verificationHash2 = verificationHash2
        self.verificationKey = verificationKey
        self.verificationKey2 = verificationKey2
        self.authenticationKey = authenticationKey
        self.acknowledged = acknowledged
        self.keyIDSeed = keyIDSeed
        self.privacySeedBits = privacySeedBits
        self.privacySeed = privacySeed
        self.tag = tag
    }

    /// The most privacy-amplification seed bits a `Done` may carry (2^27: blocks of up to
    /// 2^26 bits).
    public static let maxPrivacySeedBits: UInt32 = 1 << 27

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 96 + acknowledged.count * 8 + privacySeed.count * 8)
        w.u64(block)
        w.u64(verificationHash)
        w.u64(verificationHash2)
        w.u64(verificationKey)
        w.u64(verificationKey2)
        w.u64(authenticationKey.high)
        w.u64(authenticationKey.low)
        w.u32(UInt32(acknowledged.count))
        for a in acknowledged { w.u64(a) }
        w.u64(keyIDSeed)
        w.u32(privacySeedBits)
        for v in privacySeed { w.u64(v) }
        w.u128(tag)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> ReconciliationDone {
        var r = ByteReader(payload)
        let block = try r.u64(), hash = try r.u64(), hash2 = try r.u64(), verificationKey = try r.u64(), verificationKey2 = try r.u64()
        let key = KeyID(high: try r.u64(), low: try r.u64())
        let n = Int(try r.u32())
        guard n <= r.remaining / 8 else { throw WireError(.malformedPayload, "reconciliation done \(block): \(n) acknowledgements do not fit") }
        var acks: [UInt64] = []
        for _ in 0..<n { acks.append(try r.u64()) }
        let keyIDSeed = try r.u64()
        let seedBits = try r.u32()
        let words = (Int(seedBits) + 63) / 64
        guard seedBits <= maxPrivacySeedBits, words * 8 + 16 == r.remaining else {
            throw WireError(.malformedPayload, "reconciliation done \(block): a privacy-amplification seed of \(seedBits) bits does not fit")
        }
        var seed: [UInt64] = []
        seed.reserveCapacity(words)
        for _ in 0..<words { seed.append(try r.u64()) }
        let d = ReconciliationDone(block: block, verificationHash: hash, verificationHash2: hash2, verificationKey: verificationKey,
                                   verificationKey2: verificationKey2, authenticationKey: key, acknowledged: acks, keyIDSeed: keyIDSeed, privacySeedBits: seedBits, privacySeed: seed, tag: try r.u128())
        try r.expectEnd("reconciliation done")
        return d
    }
}

/// Alice → Bob: whether the block is kept (hashes equal and Bob's tag valid), the final key
/// length after privacy amplification, and her tag.
public struct ReconciliationResult: Equatable, Sendable {
    public var block: UInt64
    public var accepted: Bool
    public var finalBits: UInt32
    /// Blocks whose acknowledgement Alice received (and so committed): Bob may commit them.
    public var confirmed: [UInt64]
    /// The 128-bit Wegman–Carter tag (low 127 bits used: an element of GF(2^127 − 1)).
    public var tag: UInt128

    public init(block: UInt64, accepted: Bool, finalBits: UInt32, confirmed: [UInt64], tag: UInt128) {
        self.block = block
        self.accepted = accepted
        self.finalBits = finalBits
        self.confirmed = confirmed
        self.tag = tag
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 32 + confirmed.count * 8)
        w.u64(block)
        w.u8(accepted ? 1 : 0)
        w.u32(finalBits)
        w.u32(UInt32(confirmed.count))
        for c in confirmed { w.u64(c) }
        w.u128(tag)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> ReconciliationResult {
        var r = ByteReader(payload)
        let block = try r.u64()
        let flag = try r.u8()
        let bits = try r.u32()
        let n = Int(try r.u32())
        guard n * 8 + 16 == r.remaining else { throw WireError(.malformedPayload, "reconciliation result \(block): \(n) confirmations do not fit") }
        var confirmed: [UInt64] = []
        for _ in 0..<n { confirmed.append(try r.u64()) }
        let tag = try r.u128()
        try r.expectEnd("reconciliation result")
        guard flag <= 1 else { throw WireError(.malformedPayload, "reconciliation result \(block): flag \(flag)") }
        return ReconciliationResult(block: block, accepted: flag == 1, finalBits: bits, confirmed: confirmed, tag: tag)
    }
}
