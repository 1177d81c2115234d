import QKDWire

/// What `qkdctl status --json` prints: the network as its nodes report it.
public struct NetworkStatus: Codable, Equatable, Sendable {
    /// Whether a node's process is alive and answers its control socket.
    public enum Liveness: String, Codable, Sendable, CustomStringConvertible {
        case up, down
        public var description: String { rawValue }
    }

    public struct Node: Codable, Equatable, Sendable {
        public var id: String
        public var role: String
        public var pid: Int32?
        public var state: Liveness
        /// What the node itself reports.
        public var phase: NodePhase?
        public var uptimeSeconds: Double?
        public var linksUp: Int
        public var linksTotal: Int
        /// The node's ETSI GS QKD 014 KME (HTTPS, mutual TLS), when it serves one.
        public var kmeURL: String?
        /// The node's key relay counters, as it reports them.
        public var relays: RelayCounters?

        enum CodingKeys: String, CodingKey {
            case id, role, pid, state, phase, relays
            case kmeURL = "kme_url"
            case uptimeSeconds = "uptime_s"
            case linksUp = "links_up"
            case linksTotal = "links_total"
        }
    }

    public struct Link: Codable, Equatable, Sendable {
        public var id: String
        public var a: String
        public var b: String
        public var lengthKm: Double
        /// Both ends' states combined (`LinkState.combined`).
        public var state: LinkState
        /// Faults injected at either end (`qkdctl fault`), nil when none.
        public var faults: [String]?

        enum CodingKeys: String, CodingKey {
            case id, a, b, state, faults
            case lengthKm = "length_km"
        }
    }

    public struct SAEEntry: Codable, Equatable, Sendable {
        public var id: String
        public var node: String
    }

    public var topology: String
    public var runDirectory: String
    /// The topology's seed (physics randomness) and where the run's secret randomness comes
    /// from: "secret" (the OS CSPRNG) or "reproducible" (the seed too: keys computable from it).
    public var seed: UInt64
    public var secrecy: String
    public var nodes: [Node]
    public var links: [Link]
    public var saes: [SAEEntry]

    enum CodingKeys: String, CodingKey {
        case topology, seed, secrecy, nodes, links, saes
        case runDirectory = "run_dir"
    }

    public var nodesUp: Int { nodes.filter { $0.state == .up }.count }
    public var linksUp: Int { links.filter { $0.state == .up }.count }
}
