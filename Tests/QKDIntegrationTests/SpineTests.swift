import QKDTestKit
import CZeroMQ
import Foundation
import QKDCore
import QKDLaunch
import QKDTransport
import QKDWire
import Testing

@Suite(.serialized) struct SpineTests {
    @Test func lineThreeComesUpAndAKilledRelayTakesItsLinksDown() throws {
        let network = try Harness.up("line-3.yaml", label: "kill")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let status = network.status()
        #expect(status.nodesUp == 3)
        #expect(status.linksUp == 2)
        #expect(status.nodes.allSatisfy { $0.pid != nil && $0.phase == .up })
        #expect(status.saes.count == 4)
        for node in network.topology.nodes {
            let pid = try #require(network.recordedPID(node.id))
            #expect(network.readinessLine(of: node.id, pid: pid) != nil)
        }

        let relay = try #require(network.livePIDs()[NodeID("Relay")])
        kill(relay, SIGKILL)
        // Each neighbour notices on its own, within 3 s.
        let noticed = eventually(within: 3) {
            Harness.report(network, "Alice")?.links.first?.state == .down
                && Harness.report(network, "Bob")?.links.first?.state == .down
        }
        #expect(noticed)
        let after = network.status()
        #expect(after.nodes.first { $0.id == "Relay" }?.state == .down)
        #expect(after.nodesUp == 2)
        #expect(after.linksUp == 0)

        // A restarted relay is ready again and both links come back.
        let pid = try network.startNode(NodeID("Relay"))
        try network.waitReady([NodeID("Relay"): pid], timeoutSeconds: 20)
        #expect(eventually(within: 5) { network.status().linksUp == 2 })

        let live = Array(network.livePIDs().values)
        let result = network.down()
        #expect(result.stopped == 3)
        #expect(result.killed.isEmpty, "graceful shutdown needed SIGKILL for \(result.killed)")
        #expect(live.allSatisfy { !Processes.isAlive($0) })
        #expect(network.livePIDs().isEmpty)
        passed = true
    }

    @Test func sigtermStopsANodeGracefullyAndItsPeerSeesGoodbye() throws {
        let network = try Harness.up("line-3.yaml", label: "term")
        defer { Harness.tearDown(network) }
        let bob = try #require(network.livePIDs()[NodeID("Bob")])
        let start = Date()
        kill(bob, SIGTERM)
        #expect(Processes.waitForExit([bob], seconds: 2).isEmpty)
        #expect(Date().timeIntervalSince(start) < 2)
        // Goodbye takes the link down at once: the relay says why (not the 1 s silence timeout).
        #expect(eventually(within: 10) {
            Harness.report(network, "Relay")?.links.first { $0.id == "Relay-Bob" }?.state == .down
        })
        let relayLog = try String(contentsOfFile: network.layout.logPath(NodeID("Relay")), encoding: .utf8)
        #expect(relayLog.contains("reason=\"Bob shut down\"") || relayLog.contains("reason=Bob shut down"), "the link went down by silence, not goodbye")
        #expect(!relayLog.contains("no frame from Bob"))
        let log = try String(contentsOfFile: network.layout.logPath(NodeID("Bob")), encoding: .utf8)
        #expect(log.contains("shutting down"))
        #expect(log.contains("stopped"))
    }

    @Test func nodeRefusesABadTopologyWithExitCodeTwoNamingTheFile() throws {
        let dir = Harness.runDirectory("bad")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = "\(dir)/broken.yaml"
        try """
            nodes:
              - { id: A, lat: 0, lon: 0, role: metro-core }
            links:
              - { a: A, b: Nowhere, length_km: 5 }
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let pid = try Processes.spawn(executable: "\(Harness.binDirectory)/qkd-node",
                                      arguments: ["--topology", file, "--node", "A", "--run-dir", dir],
                                      outputPath: "\(dir)/out.txt")
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect((status >> 8) & 0xFF == 2)
        let output = try String(contentsOfFile: "\(dir)/out.txt", encoding: .utf8)
        #expect(output.contains("\(file):4:"))
        #expect(output.contains("links[0].b"))
        #expect(output.contains("Nowhere"))
    }

    @Test func launcherRefusesToStartTheSameNetworkTwice() throws {
        let network = try Harness.up("line-3.yaml", label: "twice")
        defer { Harness.tearDown(network) }
        #expect(throws: LaunchError.self) {
            _ = try Network.up(topologyPath: Harness.topology("line-3.yaml"), runDir: network.layout.root,
                               binDirectory: Harness.binDirectory)
        }
        #expect(network.livePIDs().count == 3)
    }
}
