import QKDCore

/// A block's key bits. A named wrapper so that no description, log line or error message can
/// print key material by accident: `description` shows the length only.
public struct BitVectorBox: Sendable, CustomStringConvertible {
    public let bits: BitVector

    public init(_ bits: BitVector) { self.bits = bits }

    public var count: Int { bits.count }

    public var description: String { "key(\(bits.count) bits)" }
}
