
/// The hash that authenticates a round's classical transcript: polynomial evaluation over the
/// prime field GF(p), p = 2^127 − 1, in the Poly1305 form h ← (h + c_i)·k (Bernstein, "The
/// Poly1305-AES message-authentication code", FSE 2005, with the prime of Carter–Wegman
/// polynomial hashing; den Boer 1993, Bierbrauer et al. 1994). The transcript is cut into
/// 120-bit chunks c_1 … c_L (bytes and bit fields in the order fed, little-endian), its bit
/// length is absorbed as a last chunk, so
///
///     h_k(m) = Σ_{i=1}^{L+1} c_i · k^(L+2−i)  (mod p),
///
/// a polynomial in k without constant term. For two different transcripts of at most L data
/// chunks and any Δ, h_k(m) − h_k(m′) − Δ is a non-zero polynomial of degree at most L + 1,
/// so it vanishes for at most L + 1 of the p keys: the family is ε-almost-Δ-universal with
/// ε = (L + 1)/p (Stinson, "On the connections between universal hashing, combinatorial
/// designs and error-correcting codes", 1996, Thm. 5.1 for the polynomial family). With a
/// uniformly random one-time pad s per tag, t = h_k(m) + s mod p is a Wegman–Carter tag a
/// forger matches with probability at most ε per message (Wegman & Carter, JCSS 22, 265,
/// 1981; see `TranscriptTag`). docs/security.md gives the numbers for a live block.
public struct TranscriptHash: Sendable {
    public static let prime: UInt128 = (1 << 127) - 1
    /// Data bits per chunk.
    public static let chunkBits = 120
    static let chunkMask: UInt128 = (1 << 120) - 1

    /// The key k in [1, p − 1].
    public let key: UInt128
    private var accumulator: UInt128 = 0
    /// Bits absorbed so far (the final length chunk).
    public private(set) var bits: UInt64 = 0
    private var pending: UInt128 = 0
    private var pendingBits = 0

    /// `key` (128 bits, e.g. from a link's authentication key) is reduced into [1, p − 1].
    public init(key: UInt128) {
        var k = key % TranscriptHash.prime
        if k == 0 { k = 1 }
        self.key = k
    }

    /// Chunks absorbed so far, the length chunk not counted: the L of the bound.
    public var chunks: UInt64 { TranscriptHash.chunks(bits: bits) }

    /// Data chunks of a transcript of `bits` bits: ⌈bits/120⌉.
    public static func chunks(bits: UInt64) -> UInt64 { (bits + UInt64(chunkBits) - 1) / UInt64(chunkBits) }

    /// The collision (and forgery) bound (L + 1)/p for a transcript of `bits` bits.
    public static func forgeryBound(bits: UInt64) -> Double { Double(chunks(bits: bits) + 1) / 0x1p127 }

    /// x mod p for x < 2^128, in [0, p).
    @inline(__always)
    static func fold(_ x: UInt128) -> UInt128 {
        let r = (x & prime) &+ (x >> 127)
        return r >= prime ? r &- prime : r
    }

    /// a·b mod p for a, b < p: the 254-bit product high·2^128 + low ≡ 2·high + low.
    @inline(__always)
    static func mulmod(_ a: UInt128, _ b: UInt128) -> UInt128 {
        let (high, low) = a.multipliedFullWidth(by: b)
        // high < 2^126, so 2·high < 2^127, and fold(low) < p: the sum fits in 128 bits.
        return fold(fold(low) &+ (high << 1))
    }

    @inline(__always)
    mutating func absorb(chunk: UInt128) {
        accumulator = TranscriptHash.mulmod(TranscriptHash.fold(accumulator &+ chunk), key)
    }

    /// Feeds bytes, 8 bits each, in order (the same value as feeding them one at a time
    /// through `update(bits:count:)`); whole 15-byte chunks go in at once while the pending
    /// chunk is empty.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return }
            var i = 0
            while i < b.count {
                if pendingBits == 0 && b.count - i >= 16 {
                    let lo = UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self))
                    let hi = UInt64(littleEndian: UnsafeRawPointer(base + i + 8).loadUnaligned(as: UInt64.self))
                    absorb(chunk: (UInt128(hi) << 64 | UInt128(lo)) & TranscriptHash.chunkMask)
                    self.bits &+= 120
                    i += 15
                    continue
                }
                update(bits: UInt64(b[i]), count: 8)
                i += 1
            }
        }
    }

    /// Feeds the low `count` (≤ 64) bits of `value`.
    public mutating func update(bits value: UInt64, count: Int) {
        precondition(count >= 0 && count <= 64, "TranscriptHash: at most 64 bits at a time")
        guard count > 0 else { return }
        bits &+= UInt64(count)
        var v = UInt128(count == 64 ? value : value & ((1 << UInt64(count)) - 1))
        var n = count
        while n > 0 {
            let take = min(n, TranscriptHash.chunkBits - pendingBits)
            pending |= (v & ((1 << UInt128(take)) - 1)) << UInt128(pendingBits)
            pendingBits += take
            v >>= UInt128(take)
            n -= take
            if pendingBits == TranscriptHash.chunkBits {
                absorb(chunk: pending)
                pending = 0
                pendingBits = 0
            }
        }
    }

    /// Feeds a whole 64-bit word.
    public mutating func update(word: UInt64) { update(bits: word, count: 64) }

    /// Feeds a bit vector, its bits in order.
    public mutating func update(_ vector: BitVector) {
        for w in vector.words.indices {
            update(bits: vector.words[w], count: min(64, vector.count - w * 64))
        }
    }

    /// The hash value in [0, p).
    public func finalize() -> UInt128 {
        var copy = self
        if copy.pendingBits > 0 { copy.absorb(chunk: copy.pending) }
        copy.absorb(chunk: UInt128(bits))
        return copy.accumulator
    }
}

/// Wegman–Carter tags over `TranscriptHash`: t = (h_k(m) + s) mod p with s a one-time pad of
/// 127 bits taken once from the link's pool (Wegman & Carter, JCSS 22, 265, 1981). With the
/// ε-almost-Δ-universal hash above, a forger who has seen tags of other messages under other
/// pads matches a new message's tag with probability at most (L + 1)/p + 2^-126 (the second
/// term: the pad's low 127 bits are reduced mod p, so 0 is twice as likely as any other
/// value). Each tag consumes `padBits` of key from the pool.
public enum TranscriptTag {
    public static let padBits = 128

    /// The pad of a tag from 128 bits of pool key (two words, low first).
    public static func pad(_ low: UInt64, _ high: UInt64) -> UInt128 {
        TranscriptHash.fold((UInt128(high) << 64 | UInt128(low)) & TranscriptHash.prime)
    }

    public static func tag(_ digest: UInt128, pad: UInt128) -> UInt128 {
        TranscriptHash.fold(digest &+ pad)
    }
}
