import QKDCore

/// The authentication key material of one link: an append-only log of secret bits shared by
/// both ends, read front to back, 64 bits per Wegman–Carter tag, never twice. It starts with a
/// pre-shared key (installed with the link; emulated here from the topology's seed tree) and is
/// refilled from the link's own committed key, at both ends by the same rule, so both stay
/// equal. Positions are absolute (bits ever read), so both ends can compare them.
public struct PadLog: Sendable {
    private var bits: BitVector
    /// Absolute position of `bits[0]` in the log.
    private var base = 0
    /// Absolute position of the next unused bit.
    public private(set) var position = 0
    /// Bits ever used (or skipped) for pads (the `auth_bits_total` of reports).
    public var consumed: Int { position }

    public init(preSharedKey: BitVector) { bits = preSharedKey }

    public var available: Int { base + bits.count - position }

    /// The next 64-bit pad, or nil when the log is exhausted.
    public mutating func take() -> UInt64? {
        guard available >= 64 else { return nil }
        let offset = position - base
        var pad: UInt64 = 0
        for i in 0..<64 where bits[offset + i] != 0 { pad |= 1 << UInt64(i) }
        position += 64
        return pad
    }

    /// Moves forward to absolute position `target` (pads in between are never used).
    /// Returns false if `target` is behind or beyond the log.
    public mutating func skip(to target: Int) -> Bool {
        guard target >= position, target <= base + bits.count else { return false }
        position = target
        return true
    }

    /// Appends committed key bits (the same bits, in the same order, at both ends).
    public mutating func append(_ key: BitVector) {
        let used = position - base
        if used > 1 << 16 {
            bits = bits.slice(from: used, length: bits.count - used)
            base = position
        }
        bits.append(contentsOf: key)
    }
}
