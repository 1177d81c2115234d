import QKDCore
import QKDWire

/// What `qkdctl pools --json` prints: per link, the quantum layer as its two ends report it.
public struct PoolsStatus: Codable, Equatable, Sendable {
    public struct Link: Codable, Equatable, Sendable {
        public var link: String
        /// Both ends' states combined (`LinkState.combined`).
        public var state: LinkState
        /// Latest block estimates (both ends agree on them after estimation).
        public var qber: Double?
        public var gain: Double?
        public var keyPerSignalPulse: Double?
        public var siftedBitsTotal: UInt64
        public var emulatedSeconds: Double
        public var wallSeconds: Double
        public var lagSeconds: Double
        public var blocks: UInt64
        /// Pool at the link's `a` end (both ends hold the same committed keys).
        public var storedBits: Int
        public var storedKeys: Int
        public var generatedBitsTotal: UInt64
        public var consumedBitsTotal: UInt64
        public var authBitsTotal: UInt64
        /// Committed key bits per emulated second.
        public var keyRateBps: Double
        /// Error-correction efficiency f = leaked / (n·H2(QBER)) with the errors Bob corrected.
        public var ecEfficiency: Double?
        public var blocksFailedVerification: UInt64
        /// Blocks refused at parameter estimation (the most either end counted).
        public var roundsAborted: UInt64
        /// Why the link is compromised, while it is.
        public var abortReason: String?
        public var ends: [QuantumLinkReport]

        enum CodingKeys: String, CodingKey {
            case link, state, qber, gain, blocks, ends
            case keyPerSignalPulse = "key_per_signal_pulse", siftedBitsTotal = "sifted_bits_total"
            case emulatedSeconds = "emulated_seconds", wallSeconds = "wall_seconds", lagSeconds = "lag_seconds"
            case storedBits = "stored_bits", storedKeys = "stored_keys", generatedBitsTotal = "generated_bits_total"
            case consumedBitsTotal = "consumed_bits_total", authBitsTotal = "auth_bits_total", keyRateBps = "key_rate_bps"
            case ecEfficiency = "ec_efficiency", blocksFailedVerification = "blocks_failed_verification"
            case roundsAborted = "rounds_aborted", abortReason = "abort_reason"
        }
    }

    public var topology: String
    public var links: [Link]
    /// Live nodes asked that did not answer in time (their link ends are missing from `links`).
    public var unanswered: [String]
}

extension Network {
    /// Asks every live node for its link reports and merges them per link.
    public func pools(timeoutMs: Int = 1500) -> PoolsStatus {
        let asked = Array(livePIDs().keys)
        let replies = query(asked, request: ControlRequest.pools, timeoutMs: timeoutMs)
        var byLink: [String: [QuantumLinkReport]] = [:]
        for reply in replies.values { for report in reply.pools ?? [] { byLink[report.link, default: []].append(report) } }
        let links = topology.links.map { link -> PoolsStatus.Link in
            let ends = (byLink[link.name] ?? []).sorted { $0.role < $1.role }
            let alice = ends.first { $0.role == "alice" }
            let bob = ends.first { $0.role == "bob" }
            let latest = ends.max { $0.blocks < $1.blocks }
            return PoolsStatus.Link(
                link: link.name, state: LinkState.combined(ends.map(\.state)),
                qber: latest?.qber, gain: latest?.gain, keyPerSignalPulse: latest?.keyPerSignalPulse,
                siftedBitsTotal: alice?.siftedBitsTotal ?? 0, emulatedSeconds: alice?.emulatedSeconds ?? 0,
                wallSeconds: alice?.wallSeconds ?? 0, lagSeconds: alice?.lagSeconds ?? 0, blocks: latest?.blocks ?? 0,
                storedBits: alice?.storedBits ?? 0, storedKeys: alice?.storedKeys ?? 0,
                generatedBitsTotal: alice?.generatedBitsTotal ?? 0, consumedBitsTotal: alice?.consumedBitsTotal ?? 0,
                authBitsTotal: alice?.authBitsTotal ?? 0, keyRateBps: alice?.keyRateBps ?? 0, ecEfficiency: bob?.ecEfficiency,
                blocksFailedVerification: ends.map(\.blocksFailedVerification).max() ?? 0,
                roundsAborted: ends.map(\.roundsAborted).max() ?? 0, abortReason: ends.compactMap(\.abortReason).first, ends: ends)
        }
        let unanswered = asked.filter { replies[$0]?.pools == nil }.map(\.rawValue).sorted()
        return PoolsStatus(topology: topology.name, links: links, unanswered: unanswered)
    }
}

extension Network {
    /// Keyed digests (HMAC-SHA-256 under `salt`, truncated) of the keys each of `nodes` holds
    /// for `link`, asked of all of them at once; a node that does not answer or refuses is
    /// missing from the result.
    public func keyDigests(nodes: [NodeID], link: String, salt: UInt64, timeoutMs: Int = 20_000) -> [NodeID: [KeyDigest]] {
        query(nodes, request: ControlRequest.keyDigests(link: link, salt: salt), timeoutMs: timeoutMs)
            .compactMapValues(\.digests)
    }
}
