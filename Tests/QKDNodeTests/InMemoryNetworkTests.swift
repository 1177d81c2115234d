import Foundation
import Logging
import QKDCore
import QKDNode
import QKDNodeCore
import QKDTestKit
import QKDTopology
import QKDTransport
import QKDWire
import Synchronization
import Testing

/// A whole network in one process over the in-memory transport: each node's runtime on its
/// own thread, exactly as in qkd-node, without sockets.
final class InProcessNetwork: Sendable {
    let network = InMemoryNetwork()
    let topology: Topology
    let ready = Mutex<[String]>([])
    let threads = Mutex<[Thread]>([])
    let finished = Mutex<Int>(0)

    /// The classical spine only: pools start from seed-derived bootstraps (no run directory).
    init(topology: Topology) { self.topology = topology.with(secrecy: .reproducible) }

    func start() {
        for node in topology.nodes {
            let core = NodeCore(configuration: .init(node: node.id, topology: topology, pid: 0, incarnation: 1),
                                now: SystemClock().now())
            let thread = Thread { [self] in
                let transport = network.transport(for: node.id)
                let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
                let pools = try! NodePools(node: node.id, topology: self.topology, store: nil)
                let runtime = NodeRuntime(core: core, transport: transport, clock: SystemClock(), logger: logger, pools: pools,
                                          quantum: .off) { line in
                    self.ready.withLock { $0.append(line) }
                }
                runtime.run()
                self.finished.withLock { $0 += 1 }
            }
            thread.start()
        }
    }

    func status(_ node: String) -> NodeStatusReport? {
        let reply = network.control(ControlCodec.encode(ControlRequest.status), to: NodeID(node), timeoutMs: 2000)
        return reply.flatMap { try? ControlCodec.decode(ControlReply.self, from: $0) }?.status
    }

    func stopAll() {
        for node in topology.nodes { network.requestStop(node.id) }
    }
}

@Suite(.serialized) struct InMemoryNetworkTests {
    @Test func lineComesUpThenACutLinkGoesDownAndHeals() {
        let net = InProcessNetwork(topology: TestTopologies.line3)
        net.start()
        defer {
            net.stopAll()
            // 5 s: each runtime leaves its loop within one 100 ms wait of the stop request.
            _ = eventually(within: 5) { net.finished.withLock { $0 } == 3 }
        }
        // 5 s: in-process links come up on the first heartbeat (every 200 ms); threads may wait for a core.
        #expect(eventually(within: 5) { net.ready.withLock { $0.count } == 3 })
        #expect(net.ready.withLock { $0 }.contains { $0.hasPrefix("QKDNET READY node=B ") && $0.hasSuffix("links=2/2") })

        net.network.cutLink(NodeID("B"), NodeID("C"))
        // 5 s: down after 1 s of silence, plus a heartbeat interval; the rest is room for a busy machine.
        #expect(eventually(within: 5) { net.status("C")?.links.first?.state == .down })
        #expect(eventually(within: 5) { net.status("B")?.links.first { $0.id == "B-C" }?.state == .down })
        #expect(net.status("A")?.links.first?.state == .up)

        net.network.healLink(NodeID("B"), NodeID("C"))
        // 5 s: up again on the first heartbeat after the heal (every 200 ms).
        #expect(eventually(within: 5) { net.status("C")?.links.first?.state == .up })
    }

    @Test func stopRequestEndsEveryRuntime() {
        let net = InProcessNetwork(topology: TestTopologies.line3)
        net.start()
        // 5 s: as above, the first heartbeats.
        #expect(eventually(within: 5) { net.ready.withLock { $0.count } == 3 })
        net.stopAll()
        // 5 s: each runtime leaves its loop within one 100 ms wait of the stop request.
        #expect(eventually(within: 5) { net.finished.withLock { $0 } == 3 })
    }
}
