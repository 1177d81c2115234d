import QKDCore
import QKDTopology
import QKDWire

/// One node's view of the network for routing key relays, as a pure instance: the latest
/// link-state advertisement of every node (flooded over the classical channels), and path
/// selection on it.
///
/// A link is usable when both of its ends' latest advertisements say it is up, neither says it
/// is compromised, and both ends have at least the keys the relay needs available. A node that
/// has not advertised yet, or whose advertisements stopped, leaves its links unusable as soon
/// as its neighbours advertise them down.
public struct LinkStateDatabase: Sendable {
    public let topology: Topology
    public private(set) var advertisements: [String: LinkStateAdvertisement] = [:]
    /// When each held advertisement arrived.
    private var heldSince: [String: Instant] = [:]
    /// A held advertisement not refreshed for this long gives way to any other from its origin
    /// (OSPF's MaxAge, RFC 2328 §14): origins advertise every 5 s, so only a forged sequence
    /// number far ahead of the origin's own goes unrefreshed, and it cannot hold the origin's
    /// view for longer than this.
    public let maxAgeNs: UInt64

    public init(topology: Topology, maxAgeNs: UInt64 = 20_000_000_000) {
        self.topology = topology
        self.maxAgeNs = maxAgeNs
    }

    /// The incarnation part of a sequence number: origins number their advertisements
    /// `epoch << 32 + n` (`RelayNode`), epoch the store's start count.
    public static func epoch(_ sequence: UInt64) -> UInt64 { sequence >> 32 }

    /// Why an advertisement was not stored.
    public enum Refusal: Equatable, Sendable, CustomStringConvertible {
        case unknownOrigin(String)
        /// Flooded back or late: the usual fate of an advertisement in a flooding protocol.
        case notNewer
        case beyondNextIncarnation(sequence: UInt64, held: UInt64)

        /// Whether only a forger or a misconfigured network sends it (worth a warning).
        public var isSuspicious: Bool { self != .notNewer }

        public var description: String {
            switch self {
            case .unknownOrigin(let origin): "origin '\(origin)' is not a node of the topology"
            case .notNewer: "not newer than the one held"
            case .beyondNextIncarnation(let sequence, let held): "sequence \(sequence) is more than one incarnation ahead of \(held)"
            }
        }
    }

    /// Why an advertisement is not stored (nil: it is newer than the one held for its origin
    /// and is stored, and must be flooded on). Refused: an unknown origin; a sequence number
    /// not above the held one (unless that one aged out); one more than one incarnation ahead
    /// of the held one (a restarted origin advances by one).
    public mutating func refusal(of lsa: LinkStateAdvertisement, at now: Instant) -> Refusal? {
        guard topology.node(NodeID(lsa.origin)) != nil else { return .unknownOrigin(lsa.origin) }
        if let held = advertisements[lsa.origin], let since = heldSince[lsa.origin], now.nanoseconds(since: since) < maxAgeNs {
            if held.sequence >= lsa.sequence { return .notNewer }
            if Self.epoch(lsa.sequence) > Self.epoch(held.sequence) + 1 { return .beyondNextIncarnation(sequence: lsa.sequence, held: held.sequence) }
        }
        advertisements[lsa.origin] = lsa
        heldSince[lsa.origin] = now
        return nil
    }

    /// `refusal`, as whether it was stored.
    @discardableResult
    public mutating func received(_ lsa: LinkStateAdvertisement, at now: Instant) -> Bool {
        refusal(of: lsa, at: now) == nil
    }

    /// What one end says about a link (nil if it has not said).
    func view(_ node: NodeID, _ link: LinkIndex) -> LinkStateAdvertisement.Entry? {
        advertisements[node.rawValue]?.links.first { $0.link == link }
    }

    /// Why a link cannot carry a relay needing `keys` keys (nil: it can).
    public func exclusion(of link: TopologyLink, keys: Int) -> String? {
        guard let a = view(link.a, link.index), let b = view(link.b, link.index) else { return "no link state from both ends yet" }
        if !a.up || !b.up { return "down" }
        if a.compromised || b.compromised { return "compromised" }
        let available = Int(min(a.availableKeys, b.availableKeys))
        if available < keys { return "\(available) keys available, \(keys) needed" }
        return nil
    }

    public struct Route: Sendable, Equatable {
        public var nodes: [NodeID]
        public var links: [LinkIndex]
        public var distanceKm: Double
        public var hops: Int { links.count }
    }

    public struct Decision: Sendable {
        /// The path chosen, or nil when the destination is unreachable over usable links.
        public var route: Route?
        /// Every link left out, with the reason.
        public var excluded: [(link: String, reason: String)]
    }

    /// The path for a relay from `source` to `destination` needing `keys` keys on each link:
    /// fewest hops, then shortest fibre distance, then the lexicographically smallest node
    /// sequence (deterministic: every node picks the same path from the same view).
    public func route(from source: NodeID, to destination: NodeID, keys: Int) -> Decision {
        var excluded: [(String, String)] = []
        var usable: [NodeID: [(TopologyLink, NodeID)]] = [:]
        for link in topology.links {
            if let reason = exclusion(of: link, keys: keys) {
                excluded.append((link.name, reason))
                continue
            }
            usable[link.a, default: []].append((link, link.b))
            usable[link.b, default: []].append((link, link.a))
        }
        guard source != destination, topology.node(source) != nil, topology.node(destination) != nil else {
            return Decision(route: nil, excluded: excluded)
        }
        // Dijkstra on (hops, distance, path) — small graphs (≤ a few hundred nodes).
        struct Label: Comparable {
            var hops: Int
            var distance: Double
            var path: [NodeID]
            var links: [LinkIndex]
            static func < (x: Label, y: Label) -> Bool {
                if x.hops != y.hops { return x.hops < y.hops }
                if x.distance != y.distance { return x.distance < y.distance }
                return x.path.lexicographicallyPrecedes(y.path)
            }
        }
        var best: [NodeID: Label] = [source: Label(hops: 0, distance: 0, path: [source], links: [])]
        var done = Set<NodeID>()
        while let (node, label) = best.filter({ !done.contains($0.key) }).min(by: { $0.value < $1.value }) {
            if node == destination {
                return Decision(route: Route(nodes: label.path, links: label.links, distanceKm: label.distance), excluded: excluded)
            }
            done.insert(node)
            for (link, next) in usable[node] ?? [] where !done.contains(next) {
                let candidate = Label(hops: label.hops + 1, distance: label.distance + link.lengthKm,
                                      path: label.path + [next], links: label.links + [link.index])
                if best[next].map({ candidate < $0 }) ?? true { best[next] = candidate }
            }
        }
        return Decision(route: nil, excluded: excluded)
    }
}
