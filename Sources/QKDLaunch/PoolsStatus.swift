import QKDCore
import QKDWire

/// What `qkdctl pools --json` prints: per link, the quantum layer as its two ends report it.
public struct PoolsStatus: Codable, Equatable, Sendable {
    public struct Link: Codable, Equatable, Sendable {
        public var link: String
        /// `up` when both ends report the link up, otherwise `down`.
        public var state: String
        /// Latest block estimates (both ends agree on them after estimation).
        public var qber: Double?
        public var gain: Double?
        public var keyPerSignalPulse: Double?
        public var siftedBitsTotal: UInt64
        public var emulatedSeconds: Double
        public var wallSeconds: Double
        public var lagSeconds: Double
        public var blocks: UInt64
        public var ends: [QuantumLinkReport]

        enum CodingKeys: String, CodingKey {
            case link, state, qber, gain, blocks, ends
            case keyPerSignalPulse = "key_per_signal_pulse", siftedBitsTotal = "sifted_bits_total"
            case emulatedSeconds = "emulated_seconds", wallSeconds = "wall_seconds", lagSeconds = "lag_seconds"
        }
    }

    public var topology: String
    public var links: [Link]
}

extension Network {
    /// Asks every live node for its link reports and merges them per link.
    public func pools(timeoutMs: Int = 1500) -> PoolsStatus {
        let replies = ControlClient.query(controlEndpoints(Array(livePIDs().keys)), request: ControlRequest(command: .pools),
                                          timeoutMs: timeoutMs)
        var byLink: [String: [QuantumLinkReport]] = [:]
        for reply in replies.values { for report in reply.pools ?? [] { byLink[report.link, default: []].append(report) } }
        let links = topology.links.map { link -> PoolsStatus.Link in
            let ends = (byLink[link.name] ?? []).sorted { $0.role < $1.role }
            let alice = ends.first { $0.role == "alice" }
            let latest = ends.max { $0.blocks < $1.blocks }
            return PoolsStatus.Link(
                link: link.name, state: ends.count == 2 && ends.allSatisfy { $0.state == "up" } ? "up" : "down",
                qber: latest?.qber, gain: latest?.gain, keyPerSignalPulse: latest?.keyPerSignalPulse,
                siftedBitsTotal: alice?.siftedBitsTotal ?? 0, emulatedSeconds: alice?.emulatedSeconds ?? 0,
                wallSeconds: alice?.wallSeconds ?? 0, lagSeconds: alice?.lagSeconds ?? 0, blocks: latest?.blocks ?? 0, ends: ends)
        }
        return PoolsStatus(topology: topology.name, links: links)
    }
}
