import QKDCore
import QKDTopology
import QKDWire

extension Network {
    /// Injects `fault` at both ends of its link (a heal of every link: `heal()`). A dead end is
    /// skipped (it starts clean); an end that refuses is an error naming it.
    public func fault(_ fault: ControlRequest.FaultAction) -> Result<[NodeID], LaunchError> {
        guard let name = fault.link else { return .failure(LaunchError(.control, "fault \(fault.kind.rawValue): which link?")) }
        guard let link = topology.link(named: name) else { return .failure(LaunchError(.control, "no link '\(name)' in \(topology.name)")) }
        return send(.fault(fault), to: [link.a, link.b])
    }

    /// Cuts the classical channels of every link with exactly one end in `nodes` (both ends).
    public func partition(_ nodes: Set<NodeID>) -> Result<[String], LaunchError> {
        for n in nodes where topology.node(n) == nil { return .failure(LaunchError(.control, "no node '\(n)' in \(topology.name)")) }
        let crossing = topology.links.filter { nodes.contains($0.a) != nodes.contains($0.b) }
        for link in crossing {
            if case .failure(let e) = fault(.partition(link: link.name)) { return .failure(e) }
        }
        return .success(crossing.map(\.name))
    }

    /// Clears one link's faults, or (`link` nil) every fault at every live node and starts
    /// every node that is not running (a killed node is a fault too), waiting until it is ready.
    public func heal(link name: String? = nil, readyTimeoutSeconds: Double = 60) -> Result<[NodeID], LaunchError> {
        if let name { return fault(.heal(link: name)) }
        let live = livePIDs()
        let healed = send(ControlRequest.fault(.heal(link: nil)), to: topology.nodes.map(\.id))
        guard case .success(var nodes) = healed else { return healed }
        var started: [NodeID: Int32] = [:]
        do {
            for node in topology.nodes where live[node.id] == nil { started[node.id] = try startNode(node.id) }
            try waitReady(started, timeoutSeconds: readyTimeoutSeconds)
        } catch {
            return .failure(error)
        }
        nodes += started.keys.sorted()
        return .success(nodes)
    }

    /// `count` sequential round trips from the link's `a` end to its `b` end.
    public func ping(link name: String, count: Int) -> Result<PingReport, LaunchError> {
        guard let link = topology.link(named: name) else { return .failure(LaunchError(.control, "no link named '\(name)' in topology '\(topology.name)'")) }
        let request = ControlRequest.ping(link: link.name, count: count)
        guard let reply = query([link.a], request: request, timeoutMs: 5000 + count * 20)[link.a] else {
            return .failure(LaunchError(.control, "node \(link.a) did not answer"))
        }
        if let error = reply.error { return .failure(LaunchError(.control, "\(link.a): \(error)")) }
        guard let report = reply.ping else { return .failure(LaunchError(.control, "\(link.a): unexpected reply")) }
        return .success(report)
    }

    private func send(_ request: ControlRequest, to nodes: [NodeID]) -> Result<[NodeID], LaunchError> {
        let live = Set(livePIDs().keys)
        let targets = nodes.filter(live.contains)
        let replies = query(targets, request: request, timeoutMs: 3000)
        for n in targets {
            guard let reply = replies[n] else { return .failure(LaunchError(.control, "node \(n) did not answer")) }
            if let error = reply.error { return .failure(LaunchError(.control, "node \(n): \(error)")) }
        }
        return .success(targets)
    }
}
