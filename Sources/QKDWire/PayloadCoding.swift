/// Big-endian payload writing, the mirror of `ByteReader`.
public struct PayloadWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) { bytes.appendBigEndian(v) }
    public mutating func u64(_ v: UInt64) { bytes.appendBigEndian(v) }
    /// Two u64, the low one first (what `ByteReader.u128` reads).
    public mutating func u128(_ v: UInt128) {
        u64(UInt64(truncatingIfNeeded: v))
        u64(UInt64(truncatingIfNeeded: v >> 64))
    }
    public mutating func f64(_ v: Double) { bytes.appendBigEndian(v.bitPattern) }
    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// A length-prefixed array of u32.
    public mutating func u32Array(_ values: [UInt32]) {
        u32(UInt32(values.count))
        bytes.appendBigEndian(contentsOf: values)
    }

    /// A non-empty UTF-8 string of at most 255 bytes, with a one-byte length (longer ones are
    /// cut at 255 bytes; names in this project are far shorter).
    public mutating func shortString(_ text: String) {
        let bytes = Array(text.utf8.prefix(255))
        u8(UInt8(bytes.count))
        raw(bytes)
    }

    /// A length-prefixed array of bytes.
    public mutating func byteArray(_ values: [UInt8]) {
        u32(UInt32(values.count))
        bytes.append(contentsOf: values)
    }

    /// `count` then the values (each 0 or 1) packed 8 per byte.
    public mutating func bitArray(_ bits: [UInt8]) {
        u32(UInt32(bits.count))
        bytes.reserveCapacity(bytes.count + (bits.count + 7) / 8)
        var byte: UInt8 = 0
        for (i, b) in bits.enumerated() {
            byte |= (b & 1) << UInt8(i & 7)
            if i & 7 == 7 { bytes.append(byte); byte = 0 }
        }
        if bits.count & 7 != 0 { bytes.append(byte) }
    }

    /// `count` then 2-bit values packed 4 per byte.
    public mutating func crumbArray(_ values: [UInt8]) {
        u32(UInt32(values.count))
        bytes.reserveCapacity(bytes.count + (values.count + 3) / 4)
        var byte: UInt8 = 0
        for (i, v) in values.enumerated() {
            byte |= (v & 3) << UInt8((i & 3) * 2)
            if i & 3 == 3 { bytes.append(byte); byte = 0 }
        }
        if values.count & 3 != 0 { bytes.append(byte) }
    }
}

extension ByteReader {
    public mutating func f64() throws(WireError) -> Double { Double(bitPattern: try u64()) }

    /// A count checked against what the remaining bytes can hold, so a hostile count can never
    /// make the reader allocate beyond the frame.
    mutating func count(_ what: String, bytesPerItem: Double, limit: Int) throws(WireError) -> Int {
        let n = Int(try u32())
        guard n <= limit else { throw WireError(.malformedPayload, "\(what): count \(n) exceeds the limit \(limit)") }
        guard Double(n) * bytesPerItem <= Double(remaining) + 1 else {
            throw WireError(.malformedPayload, "\(what): count \(n) needs more bytes than the \(remaining) left")
        }
        return n
    }

    /// The mirror of `PayloadWriter.shortString`: non-empty valid UTF-8, else an error naming `what`.
    public mutating func shortString(_ what: String) throws(WireError) -> String {
        let bytes = try bytes(Int(try u8()))
        guard let text = String(validating: bytes, as: UTF8.self), !text.isEmpty else {
            throw WireError(.malformedPayload, "\(what) is not a non-empty UTF-8 string")
        }
        return text
    }

    public mutating func u32Array(_ what: String, limit: Int = 1 << 28) throws(WireError) -> [UInt32] {
        try u32s(try count(what, bytesPerItem: 4, limit: limit))
    }

    public mutating func byteArray(_ what: String, limit: Int = 1 << 28) throws(WireError) -> [UInt8] {
        let n = try count(what, bytesPerItem: 1, limit: limit)
        return try bytes(n)
    }

    public mutating func bitArray(_ what: String, limit: Int = 1 << 30) throws(WireError) -> [UInt8] {
        let n = try count(what, bytesPerItem: 1.0 / 8, limit: limit)
        let packed = try bytes((n + 7) / 8)
        var out = [UInt8](repeating: 0, count: n)
        for i in 0..<n { out[i] = (packed[i >> 3] >> UInt8(i & 7)) & 1 }
        return out
    }

    public mutating func crumbArray(_ what: String, limit: Int = 1 << 30) throws(WireError) -> [UInt8] {
        let n = try count(what, bytesPerItem: 1.0 / 4, limit: limit)
        let packed = try bytes((n + 3) / 4)
        var out = [UInt8](repeating: 0, count: n)
        for i in 0..<n { out[i] = (packed[i >> 2] >> UInt8((i & 3) * 2)) & 3 }
        return out
    }
}
