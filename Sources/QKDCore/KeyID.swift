/// A key's ID: 128 bits, shown as a UUID (RFC 4122 layout), the same at both ends of a link.
/// IDs are public (they travel in the clear and appear in logs); key bits never do.
public struct KeyID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A version-4-layout UUID from two 64-bit words (the version and variant bits are set).
    public init(randomHigh: UInt64, randomLow: UInt64) {
        high = (randomHigh & ~0xF000) | 0x4000
        low = (randomLow & ~(0xC000_0000_0000_0000 as UInt64)) | 0x8000_0000_0000_0000
    }

    /// 16 bytes, big-endian.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        let words: (UInt64, UInt64)? = bytes.withContiguousStorageIfAvailable { raw in
            let r = UnsafeRawBufferPointer(raw)
            return (UInt64(bigEndian: r.loadUnaligned(as: UInt64.self)), UInt64(bigEndian: r.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
        if let words {
            (high, low) = words
            return
        }
        var h: UInt64 = 0, l: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { h = h << 8 | UInt64(b) } else { l = l << 8 | UInt64(b) }
        }
        high = h
        low = l
    }

    /// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case).
    public init?(uuidString: String) {
        let hex = uuidString.utf8.filter { $0 != UInt8(ascii: "-") }
        guard uuidString.utf8.count == 36, hex.count == 32 else { return nil }
        for (i, c) in uuidString.utf8.enumerated() where [8, 13, 18, 23].contains(i) != (c == UInt8(ascii: "-")) { return nil }
        var words: [UInt64] = [0, 0]
        for (i, c) in hex.enumerated() {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            words[i / 16] = words[i / 16] << 4 | UInt64(v)
        }
        high = words[0]
        low = words[1]
    }

    public var bytes: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high : low) >> UInt64(56 - 8 * (i % 8))) }
    }

    public var uuidString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for i in 0..<32 {
            if i == 8 || i == 12 || i == 16 || i == 20 { out.append(UInt8(ascii: "-")) }
            let word = i < 16 ? high : low
            out.append(digits[Int((word >> UInt64(60 - 4 * (i % 16))) & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { uuidString }

    public static func < (a: KeyID, b: KeyID) -> Bool { (a.high, a.low) < (b.high, b.low) }
}
