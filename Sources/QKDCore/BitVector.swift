/// A packed vector of bits (64 per word, bit i at word i/64, bit i%64). Key material lives in
/// these; nothing here ever prints its contents (`description` shows the count only).
public struct BitVector: Equatable, Sendable, CustomStringConvertible {
    public private(set) var words: [UInt64]
    public private(set) var count: Int

    public init() {
        words = []
        count = 0
    }

    public init(count: Int) {
        self.count = count
        words = [UInt64](repeating: 0, count: (count + 63) / 64)
    }

    /// Bits from bytes holding 0 or 1 each.
    public init(bits: [UInt8]) {
        self.init(count: bits.count)
        for (i, b) in bits.enumerated() where b & 1 != 0 { words[i >> 6] |= 1 << UInt64(i & 63) }
    }

    /// Bits from packed words; bits beyond `count` are cleared.
    public init(words: [UInt64], count: Int) {
        precondition(words.count >= (count + 63) / 64, "not enough words for \(count) bits")
        self.words = Array(words.prefix((count + 63) / 64))
        self.count = count
        clearTail()
    }

    public subscript(i: Int) -> UInt8 {
        get { UInt8(truncatingIfNeeded: (words[i >> 6] >> UInt64(i & 63)) & 1) }
        set {
            let mask: UInt64 = 1 << UInt64(i & 63)
            if newValue & 1 != 0 { words[i >> 6] |= mask } else { words[i >> 6] &= ~mask }
        }
    }

    public mutating func append(_ bit: UInt8) {
        if count & 63 == 0 { words.append(0) }
        if bit & 1 != 0 { words[count >> 6] |= 1 << UInt64(count & 63) }
        count += 1
    }

    public mutating func append(contentsOf other: BitVector) {
        for i in 0..<other.count { append(other[i]) }
    }

    public mutating func flip(_ i: Int) { words[i >> 6] ^= 1 << UInt64(i & 63) }

    /// Number of ones.
    public var weight: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Number of positions where `self` and `other` differ (same count required).
    public func hammingDistance(to other: BitVector) -> Int {
        precondition(count == other.count, "bit vectors of different lengths")
        var d = 0
        for i in words.indices { d += (words[i] ^ other.words[i]).nonzeroBitCount }
        return d
    }

    /// Bits [from, from + length) as a new vector.
    public func slice(from: Int, length: Int) -> BitVector {
        var out = BitVector(count: length)
        for i in 0..<length where self[from + i] != 0 { out.words[i >> 6] |= 1 << UInt64(i & 63) }
        return out
    }

    /// The bytes of the vector, little-endian bit order within each byte; the last byte's
    /// unused high bits are zero.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: (count + 7) / 8)
        for i in out.indices { out[i] = UInt8(truncatingIfNeeded: words[i >> 3] >> UInt64((i & 7) * 8)) }
        return out
    }

    /// The inverse of `bytes`.
    public init(bytes: [UInt8], count: Int) {
        precondition(bytes.count >= (count + 7) / 8, "not enough bytes for \(count) bits")
        self.init(count: count)
        for i in 0..<(count + 7) / 8 { words[i >> 3] |= UInt64(bytes[i]) << UInt64((i & 7) * 8) }
        clearTail()
    }

    private mutating func clearTail() {
        if count & 63 != 0, !words.isEmpty { words[words.count - 1] &= (1 << UInt64(count & 63)) - 1 }
    }

    public var description: String { "BitVector(\(count) bits)" }
}
