/// Big-endian reading of untrusted bytes: every read checks the bounds and throws
/// `WireError(.truncated)` rather than trapping.
public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int) throws(WireError) -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else {
            throw WireError(.truncated, "needed \(n) bytes at offset \(offset), \(remaining) left")
        }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    public mutating func u8() throws(WireError) -> UInt8 { try take(1).first! }

    public mutating func u32() throws(WireError) -> UInt32 {
        try take(4).reduce(0) { ($0 << 8) | UInt32($1) }
    }

    /// `n` big-endian u32 values in one bounds check (the caller checked `n` against its limit).
    mutating func u32s(_ n: Int) throws(WireError) -> [UInt32] {
        let slice = try take(n * 4)
        return [UInt32](unsafeUninitializedCapacity: n) { out, initialized in
            slice.withUnsafeBytes { raw in
                for i in 0..<n { out[i] = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
            }
            initialized = n
        }
    }

    public mutating func u64() throws(WireError) -> UInt64 {
        try take(8).reduce(0) { ($0 << 8) | UInt64($1) }
    }

    /// A 128-bit value as two u64, the low one first.
    public mutating func u128() throws(WireError) -> UInt128 {
        let low = try u64()
        return UInt128(try u64()) << 64 | UInt128(low)
    }

    public mutating func bytes(_ n: Int) throws(WireError) -> [UInt8] { Array(try take(n)) }

    /// Throws unless every byte was consumed.
    public func expectEnd(_ what: String) throws(WireError) {
        guard remaining == 0 else {
            throw WireError(.malformedPayload, "\(what): \(remaining) unexpected trailing bytes")
        }
    }
}

extension Array where Element == UInt8 {
    public mutating func appendBigEndian(_ value: UInt32) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    public mutating func appendBigEndian(_ value: UInt64) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }

    /// Appends every value big-endian, 4 bytes each, in one resize.
    public mutating func appendBigEndian(contentsOf values: [UInt32]) {
        let start = count
        append(contentsOf: repeatElement(0, count: values.count * 4))
        withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bigEndian, toByteOffset: start + i * 4, as: UInt32.self) }
        }
    }
}
