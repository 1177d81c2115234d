import QKDCore

/// A key an application (ETSI GS QKD 014 slave SAE) has not collected yet: relayed to this node
/// for `slave`, requested by `master`, over `path`.
public struct ApplicationKey: Equatable, Sendable {
    public var id: KeyID
    public var master: String
    public var slave: String
    public var bits: BitVector
    public var path: [String]
    /// How it was made: `qkd` (relayed QKD alone), `hybrid` (combined with an ML-KEM secret).
    public var kind: String

    public init(id: KeyID, master: String, slave: String, bits: BitVector, path: [String], kind: String = "qkd") {
        self.id = id
        self.master = master
        self.slave = slave
        self.bits = bits
        self.path = path
        self.kind = kind
    }
}
