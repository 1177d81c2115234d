/// The name of a node (a KME site: metro core, trusted relay, ground station, satellite),
/// exactly as the topology file spells it.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static func < (a: NodeID, b: NodeID) -> Bool { a.rawValue < b.rawValue }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// A fibre link's number: its index in the topology's link list. Both ends and every
/// interposer load the same topology, so the number is the same everywhere.
public struct LinkIndex: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    public static func < (a: LinkIndex, b: LinkIndex) -> Bool { a.rawValue < b.rawValue }

    public var description: String { "#\(rawValue)" }
}
