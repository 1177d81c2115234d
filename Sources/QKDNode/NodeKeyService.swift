import QKDAPI
import QKDCore
import QKDTopology

/// The node's answers to the ETSI GS QKD 014 API (status so far). Reads the pools (thread-safe)
/// from the HTTP server's threads.
public struct NodeKeyService: KeyManagementService {
    let node: NodeID
    let topology: Topology
    let pools: NodePools
    /// Bits per key delivered, and the request limits announced in `status`.
    public static let keySize = 256
    public static let maxKeyPerRequest = 128
    public static let maxKeySize = 8192
    public static let minKeySize = 8

    public init(node: NodeID, topology: Topology, pools: NodePools) {
        self.node = node
        self.topology = topology
        self.pools = pools
    }

    public func status(caller: String, slave: String) async throws(KMEError) -> KMEStatus {
        guard let master = topology.saes.first(where: { $0.id == caller }), master.node == node else {
            throw KMEError(.unauthorized, "SAE '\(caller)' is not attached to KME \(node)")
        }
        guard let target = topology.saes.first(where: { $0.id == slave }) else {
            throw KMEError(.badRequest, "unknown slave SAE '\(slave)'")
        }
        let (stored, capacity) = supply(toward: target.node)
        return KMEStatus(sourceKMEID: node.rawValue, targetKMEID: target.node.rawValue, masterSAEID: caller, slaveSAEID: slave,
                         keySize: NodeKeyService.keySize, storedKeyCount: min(stored, capacity), maxKeyCount: capacity,
                         maxKeyPerRequest: NodeKeyService.maxKeyPerRequest, maxKeySize: NodeKeyService.maxKeySize,
                         minKeySize: NodeKeyService.minKeySize)
    }

    /// Keys this node can put towards `destination` now: the spare keys (outside the
    /// authentication reserve) of its link on a fewest-hops path, and that pool's capacity. An
    /// upper bound: links further on may hold fewer (a relay checks them when it runs).
    func supply(toward destination: NodeID) -> (stored: Int, capacity: Int) {
        guard destination != node, let first = firstHop(toward: destination) else { return (0, 0) }
        return pools.read(first.name) { p in
            (max(0, p.availableKeys - p.configuration.authenticationReserve), p.configuration.maxKeyCount)
        } ?? (0, 0)
    }

    /// The link leaving this node on a fewest-hops path to `destination` (breadth first).
    func firstHop(toward destination: NodeID) -> TopologyLink? {
        var via: [NodeID: TopologyLink] = [:]
        var frontier = [node]
        var seen: Set<NodeID> = [node]
        while !frontier.isEmpty {
            var next: [NodeID] = []
            for n in frontier {
                for link in topology.links(of: n) {
                    guard let peer = link.peer(of: n), !seen.contains(peer) else { continue }
                    seen.insert(peer)
                    via[peer] = n == node ? link : via[n]
                    if peer == destination { return via[peer] }
                    next.append(peer)
                }
            }
            frontier = next
        }
        return nil
    }
}
