@testable import QKDCore
import Testing

/// The transcript hash over GF(2^127 − 1) and its Wegman–Carter tags, checked against a slow
/// reference written from the definition (double-and-add multiplication, explicit powers).
struct TranscriptHashTests {
    static let p = TranscriptHash.prime

    /// a + b mod p for a, b < p.
    static func addmod(_ a: UInt128, _ b: UInt128) -> UInt128 {
        let (s, over) = a.addingReportingOverflow(b)
        precondition(!over)
        return s >= p ? s - p : s
    }

    /// a·b mod p by double-and-add over the bits of b (no wide multiplication).
    static func slowMul(_ a: UInt128, _ b: UInt128) -> UInt128 {
        var result: UInt128 = 0
        var base = a % p
        var e = b
        while e > 0 {
            if e & 1 == 1 { result = addmod(result, base) }
            base = addmod(base, base)
            e >>= 1
        }
        return result
    }

    static func slowPow(_ k: UInt128, _ n: Int) -> UInt128 {
        var r: UInt128 = 1
        for _ in 0..<n { r = slowMul(r, k) }
        return r
    }

    /// h_k(m) = Σ_{i=1}^{L+1} c_i k^(L+2−i) with c_{L+1} the bit length: the formula of the
    /// doc comment evaluated term by term, chunks cut from the message bits directly.
    static func reference(_ bits: [UInt8], key: UInt128) -> UInt128 {
        var chunks: [UInt128] = []
        var i = 0
        while i < bits.count {
            var c: UInt128 = 0
            for j in 0..<min(120, bits.count - i) where bits[i + j] == 1 { c |= 1 << UInt128(j) }
            chunks.append(c)
            i += 120
        }
        chunks.append(UInt128(bits.count))
        let k = key % p == 0 ? 1 : key % p
        let count = chunks.count
        return chunks.enumerated().reduce(UInt128(0)) { acc, item in
            addmod(acc, slowMul(item.element, slowPow(k, count + 1 - item.offset - 1)))
        }
    }

    static func bits(of bytes: [UInt8]) -> [UInt8] {
        bytes.flatMap { b in (0..<8).map { (b >> UInt8($0)) & 1 } }
    }

    @Test func multiplicationModuloTheMersennePrimeMatchesDoubleAndAdd() {
        var g = Xoshiro256(seed: 11)
        let p = Self.p
        let edges: [UInt128] = [0, 1, 2, p - 1, p - 2, 1 << 126, (1 << 126) + 1, (1 << 64) - 1, 1 << 64]
        var pairs = edges.flatMap { a in edges.map { (a, $0) } }
        for _ in 0..<200 { pairs.append(((UInt128(g.next()) << 64 | UInt128(g.next())) % p, (UInt128(g.next()) << 64 | UInt128(g.next())) % p)) }
        for (a, b) in pairs {
            #expect(TranscriptHash.mulmod(a, b) == Self.slowMul(a, b), "\(a) · \(b)")
        }
    }

    @Test func theHashIsThePolynomialOfItsChunksWithoutConstantTerm() {
        var g = Xoshiro256(seed: 12)
        for length in [0, 1, 14, 15, 16, 29, 30, 31, 47, 100] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            let key = UInt128(g.next()) << 64 | UInt128(g.next())
            var h = TranscriptHash(key: key)
            h.update(bytes)
            #expect(h.finalize() == Self.reference(Self.bits(of: bytes), key: key), "\(length) bytes")
            #expect(h.bits == UInt64(8 * length))
        }
    }

    @Test func bytesWordsAndBitFieldsFeedTheSameBitStream() {
        var g = Xoshiro256(seed: 13)
        let words = (0..<9).map { _ in g.next() }
        let key = UInt128(g.next()) << 64 | UInt128(g.next())
        var byWord = TranscriptHash(key: key), byByte = TranscriptHash(key: key), byField = TranscriptHash(key: key)
        for w in words { byWord.update(word: w) }
        byByte.update(words.flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * UInt64($0))) } })
        for w in words {
            byField.update(bits: w, count: 13)
            byField.update(bits: w >> 13, count: 51)
        }
        #expect(byWord.finalize() == byByte.finalize())
        #expect(byWord.finalize() == byField.finalize())
        let vector = BitVector(words: words, count: 9 * 64 - 5)
        var byVector = TranscriptHash(key: key)
        byVector.update(vector)
        var bits = Self.bits(of: words.flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * UInt64($0))) } })
        bits.removeLast(5)
        #expect(byVector.finalize() == Self.reference(bits, key: key))
    }

    @Test func everyFlippedBitAndEveryAppendedZeroChangesTheHash() {
        var g = Xoshiro256(seed: 14)
        let bytes = (0..<40).map { _ in UInt8(truncatingIfNeeded: g.next()) }
        let key = UInt128(g.next()) << 64 | UInt128(g.next())
        var base = TranscriptHash(key: key)
        base.update(bytes)
        let h = base.finalize()
        for i in 0..<(bytes.count * 8) {
            var flipped = bytes
            flipped[i / 8] ^= 1 << UInt8(i % 8)
            var t = TranscriptHash(key: key)
            t.update(flipped)
            #expect(t.finalize() != h, "bit \(i)")
        }
        var longer = base
        longer.update(bits: 0, count: 1)
        #expect(longer.finalize() != h, "a trailing zero bit is part of the message (its length is hashed)")
    }

    @Test func tagsUseTheHashPlusAOneTimePadModuloP() {
        var h = TranscriptHash(key: 987_654_321)
        h.update([1, 2, 3])
        let d = h.finalize()
        let pad = TranscriptTag.pad(0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF)
        #expect(pad == 0, "the all-ones 127 bits are p ≡ 0")
        #expect(TranscriptTag.tag(d, pad: pad) == d)
        let pad2 = TranscriptTag.pad(5, 1 << 63 | 7)
        #expect(pad2 == UInt128(7) << 64 | 5, "the top bit of the 128 is dropped")
        #expect(TranscriptTag.tag(d, pad: pad2) == Self.addmod(d, pad2))
        #expect(TranscriptTag.tag(d, pad: 1) != TranscriptTag.tag(d, pad: 2))
    }

    /// The bound is (L + 1)/p with L the data chunks of 120 bits: for the ~4e7-bit transcript
    /// of a 4-Mbit block it is below 2^-100, far under the 2^-64 the design asks.
    @Test func theForgeryBoundCountsChunksOfTheTranscript() {
        #expect(TranscriptHash.forgeryBound(bits: 0) == 1 / 0x1p127)
        #expect(TranscriptHash.forgeryBound(bits: 120) == 2 / 0x1p127)
        #expect(TranscriptHash.forgeryBound(bits: 121) == 3 / 0x1p127)
        #expect(TranscriptHash.forgeryBound(bits: 40_000_000) < 0x1p-100)
        var h = TranscriptHash(key: 3)
        h.update([UInt8](repeating: 7, count: 31))
        #expect(h.chunks == 3 && h.bits == 248)
    }
}
