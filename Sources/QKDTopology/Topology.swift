import QKDCore
import QKDPhysics

/// What a node is in the network. Every role runs the same KME software; the role tells
/// users and routing what the site stands for.
public enum NodeRole: String, Sendable, CaseIterable, Codable {
    case metroCore = "metro-core"
    case trustedRelay = "trusted-relay"
    case groundStation = "ground-station"
    case satellite
}

/// Where a node listens when it is reached over TCP rather than ipc:// in the run directory.
/// The peer socket binds `port`, the control socket `port + 1`.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

public struct TopologyNode: Hashable, Sendable {
    public let id: NodeID
    /// Where the site is (a satellite: 0, 0; its position comes from `orbit`).
    public let latitude: Double
    public let longitude: Double
    public let role: NodeRole
    public let endpoint: Endpoint?
    /// A satellite's orbit (`orbit:`).
    public let orbit: CircularOrbit?
    /// A ground station's site: position, altitude and minimum elevation.
    public let station: GroundSite?

    public init(id: NodeID, latitude: Double, longitude: Double, role: NodeRole,
                endpoint: Endpoint? = nil, orbit: CircularOrbit? = nil, station: GroundSite? = nil) {
        self.id = id
        self.latitude = latitude
        self.longitude = longitude
        self.role = role
        self.endpoint = endpoint
        self.orbit = orbit
        self.station = station
    }
}

/// What carries a link's photons.
public enum LinkMedium: Hashable, Sendable {
    case fibre
    /// Between a satellite and a ground station, while the station sees it.
    case freeSpace(FreeSpaceChannel)
}

/// A fibre link between two nodes, with its physics resolved (defaults plus overrides).
public struct TopologyLink: Hashable, Sendable {
    public let index: LinkIndex
    public let a: NodeID
    public let b: NodeID
    /// A fibre's length (a free-space link: 0; its range changes through each pass).
    public let lengthKm: Double
    public let physics: PhysicsParameters
    public let medium: LinkMedium
    /// Sky light at a free-space link's ground station, by day and by night (none on fibre).
    public let background: SkyBackground

    public init(index: LinkIndex, a: NodeID, b: NodeID, lengthKm: Double,
                physics: PhysicsParameters, medium: LinkMedium = .fibre, background: SkyBackground = .dark) {
        self.index = index
        self.a = a
        self.b = b
        self.lengthKm = lengthKm
        self.physics = physics
        self.medium = medium
        self.background = background
    }

    /// Between a satellite and a ground station (`type: free-space`).
    public var isFreeSpace: Bool { if case .freeSpace = medium { true } else { false } }

    /// The link's name, `a-b`, as users type it and as reports show it.
    public var name: String { "\(a.rawValue)-\(b.rawValue)" }

    /// The other end of the link as seen from `node`, or nil if `node` is not an end.
    public func peer(of node: NodeID) -> NodeID? {
        if node == a { return b }
        if node == b { return a }
        return nil
    }
}

/// A secure application entity: an application endpoint attached to one node's KME.
public struct SAE: Hashable, Sendable {
    public let id: String
    public let node: NodeID
    /// How the keys this SAE asks for as master are made (`key_policy`; nil: the network's
    /// default, QKD relayed alone).
    public let keyPolicy: KeyPolicy?

    public init(id: String, node: NodeID, keyPolicy: KeyPolicy? = nil) {
        self.id = id
        self.node = node
        self.keyPolicy = keyPolicy
    }
}

/// The key policy of one pair of SAEs (`key_policies:`), above its master's own.
public struct PairKeyPolicy: Hashable, Sendable {
    public let master: String
    public let slave: String
    public let policy: KeyPolicy

    public init(master: String, slave: String, policy: KeyPolicy) {
        self.master = master
        self.slave = slave
        self.policy = policy
    }
}

/// A pair of SAEs whose keys are relayed ahead of their requests (`key_stocks:`): the master's
/// KME keeps up to `keys` end-to-end keys of `keySize` bits for the slave, refilled by relays
/// whenever a path has key (across a satellite: after the passes that make one), and answers
/// the pair's `enc_keys` from it at once; the slave's KME holds the same keys for `dec_keys`.
public struct KeyStock: Hashable, Sendable {
    public let master: String
    public let slave: String
    public let keys: Int
    public let keySize: Int
    public static let defaultKeySize = 256
    public static let maximumKeys = 4096

    public init(master: String, slave: String, keys: Int, keySize: Int = defaultKeySize) {
        self.master = master
        self.slave = slave
        self.keys = keys
        self.keySize = keySize
    }
}

/// What every KME of the network holds and answers at most (topology section `kme`): the
/// bounds that keep one SAE from exhausting a node (ETSI GS QKD 014 leaves them to the KME;
/// `status` reports `max_key_count` and `max_key_per_request`, refusals are 503 with a
/// message).
public struct KMELimits: Hashable, Sendable {
    /// How long a key delivered for a slave SAE waits for its `dec_keys`, in emulated seconds
    /// (`key_retention_s`); then it is forgotten.
    public var keyRetentionSeconds: Double
    /// The most key bits one slave SAE may have waiting at its KME from one master SAE
    /// (`max_waiting_bits_per_pair`; bits, not keys, because bits are what a waiting key costs
    /// in memory and in link keys relayed; per pair, so that one master cannot fill a slave's quota
    /// for the others): a relay that would exceed it is refused by the destination, before any
    /// key is released.
    public var maxWaitingBitsPerPair: Int
    /// The most `enc_keys` requests one master SAE may have in flight at its KME
    /// (`max_requests_per_sae`); more are answered 503 at once.
    public var maxRequestsPerSAE: Int
    /// The most requests in flight at one KME, all SAEs together (`max_requests`).
    public var maxRequests: Int

    public init(keyRetentionSeconds: Double = 3600, maxWaitingBitsPerPair: Int = 1 << 22, maxRequestsPerSAE: Int = 8, maxRequests: Int = 256) {
        self.keyRetentionSeconds = keyRetentionSeconds
        self.maxWaitingBitsPerPair = maxWaitingBitsPerPair
        self.maxRequestsPerSAE = maxRequestsPerSAE
        self.maxRequests = maxRequests
    }

    /// `keyRetentionSeconds` in nanoseconds of the node's clock.
    public var keyRetentionNs: UInt64 { UInt64(keyRetentionSeconds * 1e9) }
}

/// A validated network description. Construct it with `TopologyParser`; every invariant the
/// parser checks (unique ids, known link ends, physical ranges) holds for every instance.
public struct Topology: Sendable {
    public let name: String
    public let seed: UInt64
    /// Where secret randomness comes from (`secrecy:`; `--reproducible` overrides): the OS
    /// CSPRNG by default, the seed tree for a reproducible run (docs/security.md).
    public let secrecy: Secrecy
    /// Emulated seconds per wall second.
    public let timeScale: Double
    public static let maximumTimeScale = 1e6

    /// Why `value` cannot be a time scale, or nil if it can: (0, 1e6] emulated s per wall s.
    public static func timeScaleProblem(_ value: Double) -> String? {
        value > 0 && value <= maximumTimeScale ? nil : "\(value) is outside (0, \(Int(maximumTimeScale))]"
    }
    public let defaults: PhysicsParameters
    public let nodes: [TopologyNode]
    public let links: [TopologyLink]
    public let saes: [SAE]
    public let kme: KMELimits
    /// When emulated time runs, for a network with free-space links (`mission:`); nil without.
    public let mission: Mission?
    /// The files beside the topology it names (loss tables), relative to its directory: a
    /// copy of the topology (a run directory's) needs them beside it too.
    public var dataFiles: [String] = []
    /// The pairs of SAEs whose keys are stocked (`key_stocks:`), each pair once.
    public var keyStocks: [KeyStock] = []
    /// Key policies of pairs of SAEs (`key_policies:`), each pair once.
    public var keyPolicies: [PairKeyPolicy] = []

    /// How keys from `master` to `slave` are made: the pair's policy, else the master's, else
    /// QKD alone.
    public func keyPolicy(master: String, slave: String) -> KeyPolicy {
        keyPolicies.first { $0.master == master && $0.slave == slave }?.policy
            ?? saes.first { $0.id == master }?.keyPolicy ?? .qkd
    }

    /// The stock of keys from `master` to `slave`, if the topology keeps one.
    public func keyStock(master: String, slave: String) -> KeyStock? {
        keyStocks.first { $0.master == master && $0.slave == slave }
    }

    private let nodeIndex: [NodeID: Int]

    public init(name: String, seed: UInt64, secrecy: Secrecy = .secret, timeScale: Double, defaults: PhysicsParameters,
                nodes: [TopologyNode], links: [TopologyLink], saes: [SAE], kme: KMELimits = KMELimits(), mission: Mission? = nil) {
        self.name = name
        self.seed = seed
        self.secrecy = secrecy
        self.timeScale = timeScale
        self.defaults = defaults
        self.nodes = nodes
        self.links = links
        self.saes = saes
        self.kme = kme
        self.mission = mission
        var index: [NodeID: Int] = [:]
        for (i, node) in nodes.enumerated() { index[node.id] = i }
        self.nodeIndex = index
    }

    /// The same network run at another pace (emulated seconds per wall second).
    public func with(timeScale: Double) -> Topology { copy(timeScale: timeScale) }

    /// The same network with its secret randomness from `secrecy` (`--reproducible`).
    public func with(secrecy: Secrecy) -> Topology { copy(secrecy: secrecy) }

    /// The same network with its mission's emulated time pinned to `origin` (`qkd-node
    /// --mission-origin`, from `qkdctl up`: every node of a run the same).
    public func with(missionOrigin origin: Instant) -> Topology {
        var m = mission
        m?.origin = origin
        return copy(mission: m)
    }

    private func copy(timeScale: Double? = nil, secrecy: Secrecy? = nil, mission: Mission?? = nil) -> Topology {
        var t = Topology(name: name, seed: seed, secrecy: secrecy ?? self.secrecy, timeScale: timeScale ?? self.timeScale, defaults: defaults,
                         nodes: nodes, links: links, saes: saes, kme: kme, mission: mission ?? self.mission)
        t.dataFiles = dataFiles
        t.keyStocks = keyStocks
        t.keyPolicies = keyPolicies
        return t
    }

    public func node(_ id: NodeID) -> TopologyNode? {
        nodeIndex[id].map { nodes[$0] }
    }

    /// The links that end at `node`, in topology order.
    public func links(of node: NodeID) -> [TopologyLink] {
        links.filter { $0.a == node || $0.b == node }
    }

    public func link(_ index: LinkIndex) -> TopologyLink? {
        let i = Int(index.rawValue)
        return i < links.count ? links[i] : nil
    }

    /// Resolves a link as a user names it: `A-B` or `B-A`, where node ids may themselves
    /// contain dashes. Returns nil when no link has that name.
    public func link(named name: String) -> TopologyLink? {
        links.first { $0.name == name || "\($0.b.rawValue)-\($0.a.rawValue)" == name }
    }
}
