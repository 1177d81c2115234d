import QKDCore
import QKDTopology

/// Small topologies the unit tests share.
public enum TestTopologies {
    /// A — B — C, 10 km links, the classical spine only.
    public static let line3 = try! TopologyParser.parse("""
        name: t
        nodes:
          - { id: A, lat: 0, lon: 0, role: metro-core }
          - { id: B, lat: 0, lon: 1, role: trusted-relay }
          - { id: C, lat: 0, lon: 2, role: metro-core }
        links:
          - { a: A, b: B, length_km: 10 }
          - { a: B, b: C, length_km: 10 }
        """, file: "t.yaml")

    /// A — B, one 20 km link with a fast source (seed 5).
    public static let pair = try! TopologyParser.parse("""
        name: q
        seed: 5
        defaults: { source_rate_hz: 1.0e8 }
        nodes:
          - { id: A, lat: 0, lon: 0, role: metro-core }
          - { id: B, lat: 0, lon: 1, role: metro-core }
        links:
          - { a: A, b: B, length_km: 20 }
        """, file: "q.yaml")
}

extension Instant {
    /// `value` milliseconds after the origin (tests' manual time).
    public static func ms(_ value: UInt64) -> Instant { Instant(nanoseconds: value * 1_000_000) }
}

extension TestTopologies {
    /// The repository's root (this file is Sources/QKDTestKit/TestTopologies.swift).
    public static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// A topology shipped in Topologies/ (`name` without `.yaml`).
    public static func shipped(_ name: String) throws -> Topology {
        try TopologyParser.load(path: "\(repositoryRoot)/Topologies/\(name).yaml")
    }
}
