import QKDTopology

enum QKDTopologyFixture {
    static func line() throws -> Topology {
        try TopologyParser.parse("""
            nodes:
              - { id: A, lat: 0, lon: 0, role: metro-core }
              - { id: B, lat: 0, lon: 1, role: metro-core }
            links:
              - { a: A, b: B, length_km: 10 }
            """, file: "fixture.yaml")
    }
}
