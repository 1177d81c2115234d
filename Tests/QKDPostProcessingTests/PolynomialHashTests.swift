import QKDCore
import QKDPostProcessing
import Testing

@Suite struct PolynomialHashTests {
    /// Reference: plain modular arithmetic on 128-bit values, chunk by chunk.
    func reference(_ bytes: [UInt8], key: UInt64) -> UInt64 {
        let p = PolynomialHash.prime
        var k = key % p
        if k == 0 { k = 1 }
        var chunks: [UInt64] = []
        var bits = [UInt8]()
        for b in bytes { for i in 0..<8 { bits.append((b >> UInt8(i)) & 1) } }
        var i = 0
        while i < bits.count {
            var c: UInt64 = 0
            for j in 0..<56 where i + j < bits.count { c |= UInt64(bits[i + j]) << UInt64(j) }
            chunks.append(c)
            i += 56
        }
        chunks.append(UInt64(bits.count))
        var acc: UInt64 = 0
        for c in chunks {
            // (acc·k) mod p by 128-bit division (acc, k < p, so the quotient fits).
            let (hi, lo) = acc.multipliedFullWidth(by: k)
            let r = p.dividingFullWidth((hi, lo)).remainder
            acc = (r + c) % p
        }
        return acc
    }

    @Test func matchesPlainModularArithmetic() {
        var g = Xoshiro256(seed: 1)
        for length in [0, 1, 6, 7, 8, 100, 1000] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            let key = g.next()
            var h = PolynomialHash(key: key)
            h.update(bytes)
            #expect(h.finalize() == reference(bytes, key: key), "length \(length)")
        }
    }

    /// Bytes fed in bulk hash like the same bytes fed one by one, also when odd-sized bit
    /// updates leave the pending chunk off a byte boundary between them.
    @Test func bulkByteUpdatesMatchBitByBitUpdates() {
        var g = Xoshiro256(seed: 3)
        for trial in 0..<200 {
            let key = g.next()
            var bulk = PolynomialHash(key: key), single = PolynomialHash(key: key)
            for _ in 0..<Int(g.next() % 6) {
                if g.next() & 1 == 0 {
                    let bytes = (0..<Int(g.next() % 40)).map { _ in UInt8(truncatingIfNeeded: g.next()) }
                    bulk.update(bytes)
                    for b in bytes { single.update(bits: UInt64(b), count: 8) }
                } else {
                    let count = Int(g.next() % 56) + 1
                    let value = g.next()
                    bulk.update(bits: value, count: count)
                    single.update(bits: value, count: count)
                }
            }
            #expect(bulk.finalize() == single.finalize(), "trial \(trial)")
        }
    }

    @Test func bitVectorsAndBytesAgreeAndEveryFlipChangesTheHash() {
        var g = Xoshiro256(seed: 9)
        let v = randomBits(4000, &g)
        var h = PolynomialHash(key: 12345)
        h.update(v.bytes)
        #expect(h.finalize() == PolynomialHash.hash(v, key: 12345))
        let base = PolynomialHash.hash(v, key: 777)
        for i in stride(from: 0, to: 4000, by: 37) {
            var w = v
            w.flip(i)
            #expect(PolynomialHash.hash(w, key: 777) != base, "flip at \(i)")
        }
        // Length is part of the message: a trailing zero bit changes the hash.
        var longer = v
        longer.append(0)
        #expect(PolynomialHash.hash(longer, key: 777) != base)
    }

    /// ε_cor of two independent hashes: ((L + 1)/p)² for L 56-bit chunks; at the largest block a
    /// topology allows (2^26 bits) it is still below the smallest eps_cor it accepts (1e-24).
    @Test func theDoubleCollisionBoundCoversTheLargestBlock() {
        let p = Double(PolynomialHash.prime)
        #expect(PolynomialHash.doubleCollisionBound(bits: 56) == (2 / p) * (2 / p))
        #expect(PolynomialHash.doubleCollisionBound(bits: 57) == (3 / p) * (3 / p))
        #expect(PolynomialHash.doubleCollisionBound(bits: 1 << 26) <= 1e-24)
    }
}
