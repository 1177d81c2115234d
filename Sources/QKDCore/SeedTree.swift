/// Derives independent generator streams from one root seed and a label such as
/// `"run/Beijing-Langfang/bb84.bases/17"`, so that adding a link or a purpose never perturbs
/// the others (the per-component streams of ns-3). Labels are hashed with FNV-1a 64 over their
/// UTF-8 bytes, never with `hashValue`, which is randomised per process.
public struct SeedTree: Sendable, Equatable {
    public let root: UInt64

    public init(root: UInt64) { self.root = root }

    /// The seed of the stream named `label`.
    public func seed(for label: String) -> UInt64 {
        var mix = SplitMix64(seed: root ^ SeedTree.fnv1a64(label))
        return mix.next()
    }

    /// A fresh generator for the stream named `label`.
    public func stream(_ label: String) -> Xoshiro256 {
        Xoshiro256(seed: seed(for: label))
    }

    /// A subtree whose labels are prefixed with `label + "/"`.
    public func child(_ label: String) -> SeedTree {
        SeedTree(root: seed(for: label))
    }

    /// FNV-1a, 64-bit (Fowler, Noll, Vo).
    public static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }
}
