import QKDCore

/// Universal hashing by polynomial evaluation over the prime field GF(p), p = 2^61 − 1
/// (Carter & Wegman, JCSS 18, 143, 1979; the polynomial family of den Boer 1993 and
/// Bernstein's Poly1305 design): the message is cut into 56-bit chunks c_1 … c_L, its bit
/// length is appended as a final chunk, and h_k(m) = Σ c_i k^(L+1−i) mod p. Two different
/// messages of at most L chunks collide for at most (L + 1)/p of the keys k. Used for
/// verification (two independent keys, ε_cor); transcripts are authenticated by
/// `TranscriptHash`, over GF(2^127 − 1).
public struct PolynomialHash: Sendable {
    public static let prime: UInt64 = (1 << 61) - 1

    public let key: UInt64
    private var accumulator: UInt64 = 0
    private var bits: UInt64 = 0
    private var pending: UInt64 = 0
    private var pendingBits = 0

    /// `key` is reduced into [1, p − 1] (0 would make every message hash alike).
    public init(key: UInt64) {
        var k = key % PolynomialHash.prime
        if k == 0 { k = 1 }
        self.key = k
    }

    @inline(__always)
    static func mulmod(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (hi, lo) = a.multipliedFullWidth(by: b)
        // a·b = hi·2^64 + lo; 2^61 ≡ 1 (mod p).
        let low61 = lo & prime
        let rest = (lo >> 61) | (hi << 3)
        var r = low61 &+ rest
        r = (r & prime) &+ (r >> 61)
        return r >= prime ? r - prime : r
    }

    @inline(__always)
    mutating func absorb(chunk: UInt64) {
        var r = PolynomialHash.mulmod(accumulator, key) &+ chunk
        r = (r & PolynomialHash.prime) &+ (r >> 61)
        accumulator = r >= PolynomialHash.prime ? r - PolynomialHash.prime : r
    }

    /// Feeds bytes (each as 8 bits, in order): the same value as feeding them one at a time
    /// through `update(bits:count:)`, but whole 7-byte chunks are absorbed at once while the
    /// pending chunk is byte-aligned.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { b in
            var i = 0
            while i < b.count {
                if pendingBits == 0 && b.count - i >= 8 {
                    // A whole chunk: the next 7 bytes, little-endian, straight in.
                    let word = UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self)
                    absorb(chunk: UInt64(littleEndian: word) & 0x00FF_FFFF_FFFF_FFFF)
                    self.bits &+= 56
                    i += 7
                    continue
                }
                guard pendingBits & 7 == 0 else {
                    update(bits: UInt64(b[i]), count: 8)
                    i += 1
                    continue
                }
                let take = min((56 - pendingBits) >> 3, b.count - i)
                var v: UInt64 = 0
                for j in 0..<take { v |= UInt64(b[i + j]) << UInt64(j * 8) }
                pending |= v << UInt64(pendingBits)
                pendingBits += take * 8
                self.bits &+= UInt64(take * 8)
                i += take
                if pendingBits == 56 {
                    absorb(chunk: pending)
                    pending = 0
                    pendingBits = 0
                }
            }
        }
    }

    /// Feeds the low `count` (≤ 56) bits of `value`.
    public mutating func update(bits value: UInt64, count: Int) {
        bits &+= UInt64(count)
        var v = value & (count == 64 ? ~0 : (1 << UInt64(count)) - 1)
        var n = count
        while n > 0 {
            let take = min(n, 56 - pendingBits)
            pending |= (v & ((1 << UInt64(take)) - 1)) << UInt64(pendingBits)
            pendingBits += take
            v >>= UInt64(take)
            n -= take
            if pendingBits == 56 {
                absorb(chunk: pending)
                pending = 0
                pendingBits = 0
            }
        }
    }

    /// Feeds a bit vector (its bits in order).
    public mutating func update(_ vector: BitVector) {
        for w in vector.words.indices {
            let count = min(64, vector.count - w * 64)
            let word = vector.words[w]
            update(bits: word & 0x00FF_FFFF_FFFF_FFFF, count: min(count, 56))
            if count > 56 { update(bits: word >> 56, count: count - 56) }
        }
    }

    /// The hash value in [0, p).
    public func finalize() -> UInt64 {
        var copy = self
        if copy.pendingBits > 0 { copy.absorb(chunk: copy.pending) }
        copy.absorb(chunk: bits & ((1 << 56) - 1))
        return copy.accumulator
    }

    /// The probability that two different bit strings of `bits` bits each collide under both
    /// of two independent keys: ((L + 1)/p)² with L = ⌈bits/56⌉ chunks. The ε_cor that
    /// verification with two hashes delivers (it must not exceed the configured ε_cor).
    public static func doubleCollisionBound(bits: Int) -> Double {
        let chunks = Double((bits + 55) / 56)
        let single = (chunks + 1) / Double(prime)
        return single * single
    }

    /// h_k(vector) in one call.
    public static func hash(_ vector: BitVector, key: UInt64) -> UInt64 {
        var h = PolynomialHash(key: key)
        h.update(vector)
        return h.finalize()
    }
}
