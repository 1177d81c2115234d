import Foundation
import QKDCore
import QKDTopology
import QKDWire

extension Network {
    /// Re-provisions a node whose key store or key-encryption key is lost (`qkdctl node reset
    /// ID`). Restarting it would re-deposit the pre-shared keys its peers consumed long ago and
    /// leave every link of it without keys to authenticate with. Instead: the node is stopped
    /// (if it runs) and what is left of its store and KEK removed; every link of it gets a fresh
    /// bootstrap from the OS random source (pre-shared keys and transcript-hash key, written to
    /// both ends' files, mode 0600); each neighbour, through the control channel, replaces its
    /// keys of that link by the new pre-shared keys and starts the link's pool agreement over;
    /// then the node starts with a new store holding the same keys. Every neighbour must run
    /// (one that does not would keep its old keys of the link). Returns the links provisioned.
    public func resetNode(_ id: NodeID, readyTimeoutSeconds: Double = 60) throws(LaunchError) -> [String] {
        guard topology.node(id) != nil else { throw LaunchError(.unknownNode, "node '\(id)' is not in topology '\(topology.name)'") }
        let links = topology.links(of: id)
        let alive = livePIDs()
        let peers = links.compactMap { $0.peer(of: id) }
        let down = peers.filter { alive[$0] == nil }
        guard down.isEmpty else {
            throw LaunchError(.control, "node reset \(id): neighbour(s) \(down.map(\.rawValue).joined(separator: ", ")) not running: start them first (each must replace its keys of the link)")
        }
        if let pid = alive[id] {
            _ = Processes.stop([pid])
            Processes.reap(pid)
        }
        let prefix = "\(layout.storeDirectory)/\(id.rawValue)"
        for suffix in [".sqlite", ".sqlite-wal", ".sqlite-shm", ".kek"] where FileManager.default.fileExists(atPath: prefix + suffix) {
            do {
                try FileManager.default.removeItem(atPath: prefix + suffix)
            } catch {
                throw LaunchError(.io, "node reset \(id): cannot remove '\(prefix + suffix)': \(error.localizedDescription)")
            }
        }
        var random = SecretRandom.system
        for link in links {
            guard let peer = link.peer(of: id) else { continue }
            try Bootstrap.install(link, layout: layout, random: &random)
            let reply = query([peer], request: .rebootstrap(link: link.name), timeoutMs: 10_000)[peer]
            guard reply?.ok == true else {
                throw LaunchError(.control, "node reset \(id): \(peer) did not take the new keys of \(link.name): \(reply?.error ?? "no answer")")
            }
        }
        let pid = try startNode(id)
        try waitReady([id: pid], timeoutSeconds: readyTimeoutSeconds)
        return links.map(\.name)
    }
}
