/// How an end-to-end key for a pair of SAEs is made (topology `key_policy`, or a request's
/// `qkdnet_key_policy` extension): relayed QKD only; QKD combined with an ML-KEM-768 secret of
/// the two KMEs (`hybrid`); the ML-KEM secret only (`pqc`); or the XOR of QKD keys relayed over
/// `k` node-disjoint paths (`multipath(k)`).
public enum KeyPolicy: Hashable, Sendable, CustomStringConvertible {
    case qkd
    case hybrid
    case pqc
    case multipath(Int)

    /// The most disjoint paths a multipath key asks for.
    public static let maximumPaths = 8
    /// What `init?(_:)` takes, for error messages.
    public static let names = "qkd, hybrid, pqc, multipath or multipath(k), k in 2...\(maximumPaths)"

    /// Parses `qkd`, `hybrid`, `pqc`, `multipath` (2 paths) or `multipath(k)`, k in 2...8.
    public init?(_ text: String) {
        switch text {
        case "qkd": self = .qkd
        case "hybrid": self = .hybrid
        case "pqc": self = .pqc
        case "multipath": self = .multipath(2)
        default:
            guard text.hasPrefix("multipath("), text.hasSuffix(")"), let k = Int(text.dropFirst(10).dropLast()),
                  (2...KeyPolicy.maximumPaths).contains(k) else { return nil }
            self = .multipath(k)
        }
    }

    public var description: String {
        switch self {
        case .qkd: "qkd"
        case .hybrid: "hybrid"
        case .pqc: "pqc"
        case .multipath(let k): "multipath(\(k))"
        }
    }

    /// The kind recorded with a key made under this policy (`relay show`'s `kind`).
    public var kind: String {
        if case .multipath = self { return "multipath" }
        return description
    }
}
