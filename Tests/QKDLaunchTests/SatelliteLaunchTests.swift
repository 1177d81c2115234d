import Foundation
import QKDLaunch
import Testing

/// Until the running network emulates free-space links, launching a satellite topology is
/// refused before anything starts, with the link and what works instead named.
@Suite struct SatelliteLaunchTests {
    @Test func aSatelliteTopologyIsRefusedBeforeAnyNodeStarts() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let runDir = NSTemporaryDirectory() + "qkdnet-satlaunch-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: runDir) }
        #expect {
            _ = try Network.up(topologyPath: root.appendingPathComponent("Topologies/micius-xinglong.yaml").path, runDir: runDir, binDirectory: "/nonexistent")
        } throws: { error in
            "\(error)".contains("link Micius-Xinglong is free-space") && "\(error)".contains("qkdctl passes")
        }
        #expect(!FileManager.default.fileExists(atPath: runDir))
    }
}
