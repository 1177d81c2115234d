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

    public mutating func u64() throws(WireError) -> UInt64 {
        try take(8).reduce(0) { ($0 << 8) | UInt64($1) }
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
        for shift in stride(from: 24, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    public mutating func appendBigEndian(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}
