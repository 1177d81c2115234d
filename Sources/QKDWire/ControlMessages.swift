import Foundation

/// A request from qkdctl to one node's control socket: one case per command, each with what
/// it needs. On the wire a JSON object: `command` and that command's fields (`link`, `count`,
/// `salt`, `to`, `bits`, `key_ID`, `fault`, `value`, `endpoint`); decoding refuses a command
/// without a field it needs, naming the field.
public enum ControlRequest: Codable, Equatable, Sendable {
    /// Report the node's state and its links.
    case status
    /// Measure `count` sequential round trips (1...100000) to a neighbour over `link`'s peer
    /// channel.
    case ping(link: String, count: Int)
    /// Shut down gracefully (as SIGTERM does).
    case shutdown
    /// Report every link end's quantum layer and key pool.
    case pools
    /// Keyed digests (HMAC under `salt`, for audits) of `link`'s keys.
    case keyDigests(link: String, salt: UInt64)
    /// Relay an end-to-end key of `bits` bits from this node to `to`; answered when done.
    case relay(to: String, bits: Int)
    /// The path this node would choose for a relay of `bits` bits to `to`, and why.
    case routes(to: String, bits: Int)
    /// What this node knows of a relayed key: its path, never its bits (a digest under
    /// `salt` when given).
    case relayShow(keyID: String, salt: UInt64?)
    /// Inject or clear a fault on one of this node's links.
    case fault(FaultAction)
    /// Route `link` through an interposer on the fibre (an eavesdropper process), or directly
    /// again (nil).
    case splice(link: String, via: Interposer?)
    /// Start `link` afresh from its bootstrap file, which `qkdctl node reset` has just written
    /// anew for both ends (the peer lost its store): the link's keys are replaced by the file's
    /// pre-shared keys, its transcript-hash key by the file's, and its pool agreement starts
    /// over.
    case rebootstrap(link: String)

    /// The command names, as `command` carries them.
    public enum Command: String, Codable, Sendable {
        case status, ping, shutdown, pools, keyDigests, relay, routes, relayShow, fault, splice, rebootstrap
    }

    /// The faults `qkdctl fault` injects into a link's end, as `fault` names them.
    public enum Fault: String, Codable, Sendable, CaseIterable {
        /// Fibre cut: nothing passes.
        case cut
        /// The link crosses a partition: classical messages are dropped.
        case partition
        /// One-way delay of classical messages.
        case delay
        /// Extra attenuation of the quantum channel.
        case loss
        /// Clear the link's faults (every link of the node without a link).
        case heal
    }

    /// One fault request: which fault, on which link, how much.
    public enum FaultAction: Equatable, Sendable {
        case cut(link: String)
        case partition(link: String)
        /// One-way delay of `milliseconds` (0...60000) on the classical channel.
        case delay(link: String, milliseconds: Double)
        /// `decibels` (0...100) of extra loss on the quantum channel.
        case loss(link: String, decibels: Double)
        /// Clear `link`'s faults, or every link's (nil).
        case heal(link: String?)

        public var kind: Fault {
            switch self {
            case .cut: .cut
            case .partition: .partition
            case .delay: .delay
            case .loss: .loss
            case .heal: .heal
            }
        }

        public var link: String? {
            switch self {
            case .cut(let link), .partition(let link), .delay(let link, _), .loss(let link, _): link
            case .heal(let link): link
            }
        }

        /// The amount (`value` on the wire): milliseconds for a delay, dB for a loss.
        public var value: Double? {
            switch self {
            case .delay(_, let ms): ms
            case .loss(_, let db): db
            default: nil
            }
        }
    }

    /// Where a spliced link goes: the interposer's endpoint, her CURVE public key (Z85: the
    /// only key the node admits as her, while she is spliced in) and, at the link's `a` end,
    /// the transmittance of the fibre from `a` to the interposer (what `a` emits into).
    public struct Interposer: Equatable, Sendable {
        public var endpoint: String
        public var key: String
        public var transmittance: Double?

        public init(endpoint: String, key: String, transmittance: Double?) {
            self.endpoint = endpoint
            self.key = key
            self.transmittance = transmittance
        }
    }

    /// Round trips of a ping, and bits of a relay or route, when the request names none.
    public static let defaultPingCount = 10
    public static let defaultBits = 256

    public var command: Command {
        switch self {
        case .status: .status
        case .ping: .ping
        case .shutdown: .shutdown
        case .pools: .pools
        case .keyDigests: .keyDigests
        case .relay: .relay
        case .routes: .routes
        case .relayShow: .relayShow
        case .fault: .fault
        case .splice: .splice
        case .rebootstrap: .rebootstrap
        }
    }

    /// The routing id an interposer on `link` (by name) sends with; never a node's id.
    public static func interposerRoutingID(link: String) -> String { "eve:\(link)" }

    enum CodingKeys: String, CodingKey {
        case command, link, count, salt, to, bits, fault, value, endpoint, key
        case keyID = "key_ID"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let command = try c.decode(Command.self, forKey: .command)
        /// A field `command` needs.
        func needed<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T {
            guard let value = try c.decodeIfPresent(type, forKey: key) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: [key], debugDescription: "\(command.rawValue) needs '\(key.stringValue)'"))
            }
            return value
        }
        switch command {
        case .status: self = .status
        case .shutdown: self = .shutdown
        case .pools: self = .pools
        case .ping: self = .ping(link: try needed(String.self, .link), count: try c.decodeIfPresent(Int.self, forKey: .count) ?? Self.defaultPingCount)
        case .keyDigests: self = .keyDigests(link: try needed(String.self, .link), salt: try needed(UInt64.self, .salt))
        case .relay: self = .relay(to: try needed(String.self, .to), bits: try c.decodeIfPresent(Int.self, forKey: .bits) ?? Self.defaultBits)
        case .routes: self = .routes(to: try needed(String.self, .to), bits: try c.decodeIfPresent(Int.self, forKey: .bits) ?? Self.defaultBits)
        case .relayShow: self = .relayShow(keyID: try needed(String.self, .keyID), salt: try c.decodeIfPresent(UInt64.self, forKey: .salt))
        case .rebootstrap: self = .rebootstrap(link: try needed(String.self, .link))
        case .splice:
            let link = try needed(String.self, .link)
            let endpoint = try c.decodeIfPresent(String.self, forKey: .endpoint)
            self = .splice(link: link, via: try endpoint.map {
                Interposer(endpoint: $0, key: try needed(String.self, .key), transmittance: try c.decodeIfPresent(Double.self, forKey: .value))
            })
        case .fault:
            switch try needed(Fault.self, .fault) {
            case .cut: self = .fault(.cut(link: try needed(String.self, .link)))
            case .partition: self = .fault(.partition(link: try needed(String.self, .link)))
            case .delay: self = .fault(.delay(link: try needed(String.self, .link), milliseconds: try needed(Double.self, .value)))
            case .loss: self = .fault(.loss(link: try needed(String.self, .link), decibels: try needed(Double.self, .value)))
            case .heal: self = .fault(.heal(link: try c.decodeIfPresent(String.self, forKey: .link)))
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(command, forKey: .command)
        switch self {
        case .status, .shutdown, .pools: break
        case .ping(let link, let count):
            try c.encode(link, forKey: .link)
            try c.encode(count, forKey: .count)
        case .keyDigests(let link, let salt):
            try c.encode(link, forKey: .link)
            try c.encode(salt, forKey: .salt)
        case .relay(let to, let bits), .routes(let to, let bits):
            try c.encode(to, forKey: .to)
            try c.encode(bits, forKey: .bits)
        case .relayShow(let keyID, let salt):
            try c.encode(keyID, forKey: .keyID)
            try c.encodeIfPresent(salt, forKey: .salt)
        case .rebootstrap(let link):
            try c.encode(link, forKey: .link)
        case .fault(let action):
            try c.encode(action.kind, forKey: .fault)
            try c.encodeIfPresent(action.link, forKey: .link)
            try c.encodeIfPresent(action.value, forKey: .value)
        case .splice(let link, let via):
            try c.encode(link, forKey: .link)
            try c.encodeIfPresent(via?.endpoint, forKey: .endpoint)
            try c.encodeIfPresent(via?.key, forKey: .key)
            try c.encodeIfPresent(via?.transmittance, forKey: .value)
        }
    }
}

/// A relay as one end reports it: its key ID, path (the trusted nodes that saw the key in the
/// clear), and outcome. Never the key; `digest` is an HMAC of it under the request's salt, for
/// keys of at least 128 bits only (`KeyDigester.minimumBits`: a shorter key's digest would be
/// an oracle for its bits).
public struct RelayReport: Codable, Equatable, Sendable {
    public var keyID: String
    public var path: [String]
    public var ok: Bool
    public var error: String?
    public var latencyMs: Double?
    public var bits: Int?
    public var digest: UInt64?
    /// How the key was made: `qkd`, `hybrid` (never shown by its bits).
    public var kind: String?

    public init(keyID: String, path: [String], ok: Bool, error: String? = nil, latencyMs: Double? = nil, bits: Int? = nil,
                digest: UInt64? = nil, kind: String? = nil) {
        self.keyID = keyID
        self.path = path
        self.ok = ok
        self.error = error
        self.latencyMs = latencyMs
        self.bits = bits
        self.digest = digest
        self.kind = kind
    }

    enum CodingKeys: String, CodingKey {
        case path, ok, error, bits, digest, kind
        case keyID = "key_ID", latencyMs = "latency_ms"
    }
}

/// The path a node would choose for a relay, and every link it left out, with the reason.
public struct RouteReport: Codable, Equatable, Sendable {
    public struct Excluded: Codable, Equatable, Sendable {
        public var link: String
        public var reason: String
        public init(link: String, reason: String) {
            self.link = link
            self.reason = reason
        }
    }

    public var from: String
    public var to: String
    public var path: [String]?
    public var hops: Int?
    public var distanceKm: Double?
    public var excluded: [Excluded]

    public init(from: String, to: String, path: [String]?, hops: Int?, distanceKm: Double?, excluded: [Excluded]) {
        self.from = from
        self.to = to
        self.path = path
        self.hops = hops
        self.distanceKm = distanceKm
        self.excluded = excluded
    }

    enum CodingKeys: String, CodingKey {
        case from, to, path, hops, excluded
        case distanceKm = "distance_km"
    }
}

/// A link's state as one end (or, combined, both ends) reports it.
public enum LinkState: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Frames from the peer arrive within the liveness timeout.
    case up
    /// Silent past the timeout, cut, or never heard from.
    case down
    /// Up, but its last block failed parameter estimation (the QBER an eavesdropper leaves).
    case compromised

    public var description: String { rawValue }

    /// A link's state from its two ends' reports: `down` unless both report it up (or
    /// compromised); `compromised` when either end does.
    public static func combined(_ ends: [LinkState]) -> LinkState {
        guard ends.count == 2, !ends.contains(.down) else { return .down }
        return ends.contains(.compromised) ? .compromised : .up
    }
}

/// A node's phase as it reports it.
public enum NodePhase: String, Codable, Sendable, CustomStringConvertible {
    /// Not every link has connected yet.
    case starting
    /// Every link connected at least once.
    case up
    /// Shutting down (goodbyes sent, waiting requests refused).
    case stopping

    public var description: String { rawValue }
}

/// One link as one of its ends sees it.
public struct LinkStatusReport: Codable, Equatable, Sendable {
    public var id: String
    public var peer: String
    public var state: LinkState
    public var heartbeatsReceived: UInt64
    /// Milliseconds since the last frame from the peer, nil if none ever arrived.
    public var lastHeardMsAgo: Double?
    public var peerIncarnation: UInt64?
    /// Faults injected at this end ("cut", "partitioned", "delay 50.0 ms", "loss 3.0 dB").
    public var faults: [String]?

    public init(id: String, peer: String, state: LinkState, heartbeatsReceived: UInt64,
                lastHeardMsAgo: Double?, peerIncarnation: UInt64?, faults: [String]? = nil) {
        self.faults = faults
        self.id = id
        self.peer = peer
        self.state = state
        self.heartbeatsReceived = heartbeatsReceived
        self.lastHeardMsAgo = lastHeardMsAgo
        self.peerIncarnation = peerIncarnation
    }

    enum CodingKeys: String, CodingKey {
        case id, peer, state, faults
        case heartbeatsReceived = "heartbeats_received"
        case lastHeardMsAgo = "last_heard_ms_ago"
        case peerIncarnation = "peer_incarnation"
    }
}

/// A node's answer to `status`.
public struct NodeStatusReport: Codable, Equatable, Sendable {
    public var id: String
    public var pid: Int32
    public var state: NodePhase
    public var uptimeSeconds: Double
    public var incarnation: UInt64
    public var links: [LinkStatusReport]
    /// Rejected frames by reason (`WireError.Code` raw values).
    public var rejectedFrames: [String: UInt64]
    /// The node's ETSI GS QKD 014 endpoint (https://127.0.0.1:PORT), if it serves one.
    public var kmeURL: String?
    /// The key relay's counters (absent from a node without the relay agent).
    public var relays: RelayCounters?

    public init(id: String, pid: Int32, state: NodePhase, uptimeSeconds: Double, incarnation: UInt64,
                links: [LinkStatusReport], rejectedFrames: [String: UInt64], kmeURL: String? = nil, relays: RelayCounters? = nil) {
        self.kmeURL = kmeURL
        self.relays = relays
        self.id = id
        self.pid = pid
        self.state = state
        self.uptimeSeconds = uptimeSeconds
        self.incarnation = incarnation
        self.links = links
        self.rejectedFrames = rejectedFrames
    }

    enum CodingKeys: String, CodingKey {
        case id, pid, state, incarnation, links
        case uptimeSeconds = "uptime_s"
        case rejectedFrames = "rejected_frames"
        case kmeURL = "kme_url"
        case relays
    }
}

/// What a node's key relay did since it started: relays it was asked for (by `qkdctl relay` or
/// an ETSI 014 request, each retry of a request counted again), refused for want of a path,
/// started, delivered (its end released the key), failed (void before delivery), received as
/// the destination, and forwarded as a trusted node in between. Never a key or key ID.
public struct RelayCounters: Codable, Equatable, Sendable {
    public var requested: UInt64 = 0
    public var noPath: UInt64 = 0
    public var started: UInt64 = 0
    public var delivered: UInt64 = 0
    public var failed: UInt64 = 0
    public var received: UInt64 = 0
    public var forwarded: UInt64 = 0
    /// ETSI 014 requests answered 503 at once: by the KME's bounds on requests in flight
    /// (`kme.max_requests_per_sae`, `kme.max_requests`), and held off for a pair whose
    /// destination refused its keys (not relayed again for 10 emulated s).
    public var refusedBusy: UInt64 = 0
    public var heldOff: UInt64 = 0
    /// Why the last relay this node started failed (no path, or void on the way).
    public var lastFailure: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case requested, started, delivered, failed, received, forwarded
        case noPath = "no_path", lastFailure = "last_failure", refusedBusy = "refused_busy", heldOff = "held_off"
    }
}

/// A node's answer to `ping`: each round trip in microseconds, in order.
public struct PingReport: Codable, Equatable, Sendable {
    public var link: String
    public var roundTripsMicroseconds: [Double]
    public var lost: Int

    public init(link: String, roundTripsMicroseconds: [Double], lost: Int) {
        self.link = link
        self.roundTripsMicroseconds = roundTripsMicroseconds
        self.lost = lost
    }

    enum CodingKeys: String, CodingKey {
        case link, lost
        case roundTripsMicroseconds = "round_trips_us"
    }
}

/// One end of one link's quantum layer: what it emitted or measured, its latest estimates,
/// and its emulated versus wall-clock time.
public struct QuantumLinkReport: Codable, Sendable, Equatable {
    public var link: String
    public var role: String
    /// The link's state as this end sees it.
    public var state: LinkState
    public var session: UInt64
    public var active: Bool
    public var framesSent: UInt64
    public var framesMeasured: UInt64
    public var roundsDiscarded: UInt64
    public var blocks: UInt64
    public var siftedBitsTotal: UInt64
    public var keyBitsSifted: UInt64
    public var qber: Double?
    public var gain: Double?
    public var y1Lower: Double?
    public var e1Upper: Double?
    public var keyPerSignalPulse: Double?
    /// Emulated seconds of source time covered so far.
    public var emulatedSeconds: Double
    /// Wall seconds the link has been running.
    public var wallSeconds: Double
    /// How far the emulated clock is behind wall time × time_scale (Alice's end).
    public var lagSeconds: Double
    /// Key pool and distillation (filled by the node).
    /// Available keys (and their bits) in this end's pool.
    public var storedKeys: Int = 0
    public var storedBits: Int = 0
    /// Keys stored here, waiting for the peer's acknowledgement.
    public var pendingKeys: Int = 0
    /// Always 0: pools set no keys aside (a relay hop consumes its keys in the step that names
    /// them). Kept so that the JSON of `qkdctl pools --json` keeps every field it had.
    public var reservedKeys: Int = 0
    /// Available keys kept for the link's own authentication (applications never get them).
    public var authReserveKeys: Int = 0
    public var consumedKeysTotal: UInt64 = 0
    public var droppedKeysTotal: UInt64 = 0
    /// Keys removed when the pool was agreed with the peer's after a restart.
    public var orphansRemovedTotal: UInt64 = 0
    /// Whether the pool has been agreed with the peer's since the link came up.
    public var synchronised: Bool = false
    public var generatedBitsTotal: UInt64 = 0
    public var consumedBitsTotal: UInt64 = 0
    public var authBitsTotal: UInt64 = 0
    public var finalBitsTotal: UInt64 = 0
    /// Committed key bits per emulated second.
    public var keyRateBps: Double = 0
    public var ecEfficiency: Double?
    public var blocksFailedVerification: UInt64 = 0
    public var blocksFailedAuthentication: UInt64 = 0
    public var distillationMessagesRejected: UInt64 = 0
    /// The last block's parameter estimation failed (QBER above the abort threshold, or no
    /// single-photon key by the decoy analysis): the link is compromised until a clean block.
    public var compromised: Bool = false
    /// Why, while compromised.
    public var abortReason: String?
    /// Blocks that yielded no key because parameter estimation failed.
    public var roundsAborted: UInt64 = 0
    /// Times the link went from clean to compromised.
    public var compromisedEventsTotal: UInt64 = 0
    /// Blocks sifted in the current session (the next block's number).
    public var sessionBlocks: UInt64 = 0
    /// The newest block of the current session that put keys into this end's pool.
    public var lastKeyBlock: UInt64?
    /// The counts and bound behind the newest block distilled at this end.
    public var finiteKey: FiniteKeyReport?
    /// Where the link's secret randomness comes from ("secret" or "reproducible").
    public var secrecy: String?
    /// The newest authenticated round at this end: its transcript's length in bits, and the
    /// probability bound (L + 1)/p per tag, p = 2^127 − 1, that a forger matches a tag on it.
    public var authTranscriptBits: UInt64?
    public var authForgeryBound: Double?
    /// The newest block's verification collision bound ((L + 1)/p)², p = 2^61 − 1: the ε_cor the
    /// two verification hashes deliver, at most the configured `eps_cor`.
    public var verificationCollisionBound: Double?
    /// A free-space link's pass state (nil on fibre).
    public var freeSpace: FreeSpaceReport?

    public init(link: String, role: String, state: LinkState, session: UInt64, active: Bool, framesSent: UInt64,
                framesMeasured: UInt64, roundsDiscarded: UInt64, blocks: UInt64, siftedBitsTotal: UInt64,
                keyBitsSifted: UInt64, qber: Double? = nil, gain: Double? = nil, y1Lower: Double? = nil,
                e1Upper: Double? = nil, keyPerSignalPulse: Double? = nil, emulatedSeconds: Double, wallSeconds: Double,
                lagSeconds: Double) {
        self.link = link
        self.role = role
        self.state = state
        self.session = session
        self.active = active
        self.framesSent = framesSent
        self.framesMeasured = framesMeasured
        self.roundsDiscarded = roundsDiscarded
        self.blocks = blocks
        self.siftedBitsTotal = siftedBitsTotal
        self.keyBitsSifted = keyBitsSifted
        self.qber = qber
        self.gain = gain
        self.y1Lower = y1Lower
        self.e1Upper = e1Upper
        self.keyPerSignalPulse = keyPerSignalPulse
        self.emulatedSeconds = emulatedSeconds
        self.wallSeconds = wallSeconds
        self.lagSeconds = lagSeconds
    }

    enum CodingKeys: String, CodingKey {
        case link, role, state, session, active, blocks, qber, gain
        case framesSent = "frames_sent", framesMeasured = "frames_measured", roundsDiscarded = "rounds_discarded"
        case siftedBitsTotal = "sifted_bits_total", keyBitsSifted = "key_bits_sifted"
        case y1Lower = "y1_lower", e1Upper = "e1_upper", keyPerSignalPulse = "key_per_signal_pulse"
        case emulatedSeconds = "emulated_seconds", wallSeconds = "wall_seconds", lagSeconds = "lag_seconds"
        case storedKeys = "stored_keys", storedBits = "stored_bits", generatedBitsTotal = "generated_bits_total"
        case pendingKeys = "pending_keys", reservedKeys = "reserved_keys", authReserveKeys = "auth_reserve_keys"
        case consumedKeysTotal = "consumed_keys_total", droppedKeysTotal = "dropped_keys_total"
        case orphansRemovedTotal = "orphans_removed_total", synchronised
        case consumedBitsTotal = "consumed_bits_total", authBitsTotal = "auth_bits_total", finalBitsTotal = "final_bits_total"
        case keyRateBps = "key_rate_bps", ecEfficiency = "ec_efficiency"
        case blocksFailedVerification = "blocks_failed_verification", blocksFailedAuthentication = "blocks_failed_authentication"
        case distillationMessagesRejected = "distillation_messages_rejected"
        case compromised, abortReason = "abort_reason", roundsAborted = "rounds_aborted"
        case compromisedEventsTotal = "compromised_events_total", sessionBlocks = "session_blocks", lastKeyBlock = "last_key_block"
        case finiteKey = "finite_key", secrecy
        case authTranscriptBits = "auth_transcript_bits", authForgeryBound = "auth_forgery_bound"
        case verificationCollisionBound = "verification_collision_bound"
        case freeSpace = "free_space"
    }
}

/// Where a free-space link's satellite is, as of the link end's last step: emulated UTC (Unix
/// seconds) beside the wall, whether the station sees it and at what range and elevation, the
/// passes done and the next one.
public struct FreeSpaceReport: Codable, Sendable, Equatable {
    public var satellite: String
    public var station: String
    public var emulatedUTC: Double
    public var inView: Bool
    public var elevationDegrees: Double
    public var rangeKm: Double
    /// The channel's loss now (detector efficiency excluded), while in view.
    public var lossDb: Double?
    public var passesCompleted: Int
    public var passesTotal: Int
    public var nextPassStart: Double?
    public var nextPassEnd: Double?
    /// The Sun's elevation at the station (degrees): above −6°, day (the sky's day background).
    public var sunElevationDegrees: Double?

    public init(satellite: String, station: String, emulatedUTC: Double, inView: Bool, elevationDegrees: Double, rangeKm: Double,
                lossDb: Double?, passesCompleted: Int, passesTotal: Int, nextPassStart: Double?, nextPassEnd: Double?,
                sunElevationDegrees: Double? = nil) {
        self.satellite = satellite
        self.station = station
        self.emulatedUTC = emulatedUTC
        self.inView = inView
        self.elevationDegrees = elevationDegrees
        self.rangeKm = rangeKm
        self.lossDb = lossDb
        self.passesCompleted = passesCompleted
        self.passesTotal = passesTotal
        self.nextPassStart = nextPassStart
        self.nextPassEnd = nextPassEnd
        self.sunElevationDegrees = sunElevationDegrees
    }

    enum CodingKeys: String, CodingKey {
        case satellite, station
        case emulatedUTC = "emulated_utc", inView = "in_view", elevationDegrees = "elevation_deg", rangeKm = "range_km"
        case lossDb = "loss_db", passesCompleted = "passes_completed", passesTotal = "passes_total"
        case nextPassStart = "next_pass_start_utc", nextPassEnd = "next_pass_end_utc", sunElevationDegrees = "sun_elevation_deg"
    }
}

/// A held key's ID and its keyed digest (HMAC-SHA-256 under the audit's salt, truncated):
/// compares the pools of a link's two ends without revealing keys.
public struct KeyDigest: Codable, Equatable, Sendable {
    public var keyID: String
    public var digest: UInt64
    /// Stored here but not yet acknowledged by the peer (not available).
    public var pending: Bool

    public init(keyID: String, digest: UInt64, pending: Bool = false) {
        self.keyID = keyID
        self.digest = digest
        self.pending = pending
    }

    enum CodingKeys: String, CodingKey {
        case keyID = "key_ID", digest, pending
    }
}

/// The envelope of every control reply: exactly one of the fields is set.
public struct ControlReply: Codable, Equatable, Sendable {
    public var status: NodeStatusReport?
    public var ping: PingReport?
    public var pools: [QuantumLinkReport]?
    public var digests: [KeyDigest]?
    public var relay: RelayReport?
    public var routes: RouteReport?
    /// An eavesdropper process's answer to `status`.
    public var eve: EavesdropperReport?
    public var ok: Bool?
    public var error: String?

    public init(status: NodeStatusReport? = nil, ping: PingReport? = nil, pools: [QuantumLinkReport]? = nil,
                digests: [KeyDigest]? = nil, relay: RelayReport? = nil, routes: RouteReport? = nil, eve: EavesdropperReport? = nil,
                ok: Bool? = nil, error: String? = nil) {
        self.eve = eve
        self.status = status
        self.ping = ping
        self.pools = pools
        self.digests = digests
        self.relay = relay
        self.routes = routes
        self.ok = ok
        self.error = error
    }
}

/// What an eavesdropper learned and did on its link (`qkdctl eve list/remove --json`). Her
/// knowledge counts sifted signal bits (before estimation sampling, error correction and
/// privacy amplification) whose value she knows with certainty.
public struct EavesdropperReport: Codable, Equatable, Sendable {
    public var link: String
    public var attack: String
    public var fraction: Double
    public var seed: UInt64
    public var pid: Int32?
    /// Where Eve sits, km from the link's `a` end.
    public var atKm: Double?
    public var framesSeen: UInt64 = 0
    /// Pulses that reached Eve with at least one photon, and those she attacked.
    public var pulsesSeen: UInt64 = 0
    public var pulsesAttacked: UInt64 = 0
    /// Intercept-resend: pulses measured and resent.
    public var pulsesResent: UInt64 = 0
    /// PNS: pulses Eve stopped; PNS and beam splitting: photons she kept.
    public var pulsesBlocked: UInt64 = 0
    public var photonsKept: UInt64 = 0
    /// Sifted signal bits she saw sifted, and those whose value she knows.
    public var siftedSignalBits: UInt64 = 0
    public var knownSignalBits: UInt64 = 0
    /// Classical tamper: post-processing messages seen and altered.
    public var messagesSeen: UInt64 = 0
    public var messagesAltered: UInt64 = 0
    /// Frames she could not parse (passed on unread) or that were not for her link (dropped).
    public var framesUnreadable: UInt64 = 0
    public var framesForwarded: UInt64 = 0

    /// Fraction of the sifted signal bits Eve knows (known / sifted).
    public var knownFraction: Double = 0
    /// Signal pulses Alice sent and Bob's clicks on them, in the frames Eve saw answered (public:
    /// Alice announces both), so the gain Q_μ Bob observed under the attack.
    public var signalPulses: UInt64 = 0
    public var signalClicks: UInt64 = 0
    public var signalGain: Double?
    /// On a link without decoy states, what GLLP charges to Eve for that gain: the multi-photon
    /// (tagged) fraction Δ = [1 − (1 + μ) e^(−μ)] / Q_μ of the detected signal pulses, at most 1
    /// (nil on a decoy-state link). Compare with `knownFraction`.
    public var gllpTaggedFraction: Double?

    public init(link: String, attack: String, fraction: Double, seed: UInt64) {
        self.link = link
        self.attack = attack
        self.fraction = fraction
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey {
        case link, attack, fraction, seed, pid
        case atKm = "at_km", framesSeen = "frames_seen", pulsesSeen = "pulses_seen", pulsesAttacked = "pulses_attacked"
        case pulsesResent = "pulses_resent", pulsesBlocked = "pulses_blocked", photonsKept = "photons_kept"
        case siftedSignalBits = "sifted_signal_bits", knownSignalBits = "known_signal_bits", knownFraction = "known_fraction"
        case signalPulses = "signal_pulses", signalClicks = "signal_clicks", signalGain = "signal_gain"
        case gllpTaggedFraction = "gllp_tagged_fraction"
        case messagesSeen = "messages_seen", messagesAltered = "messages_altered"
        case framesUnreadable = "frames_unreadable", framesForwarded = "frames_forwarded"
    }
}

/// JSON coding shared by nodes and qkdctl.
public enum ControlCodec {
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding these plain structs cannot fail.
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(WireError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw WireError(.malformedPayload, "control message is not a valid \(T.self): \(describe(error))")
        } catch {
            throw WireError(.malformedPayload, "control message is not a valid \(T.self): \(error)")
        }
    }

    /// A decoding error in a sentence that names the field at fault.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return context.debugDescription.hasPrefix("No value associated") ? "missing field '\(key.stringValue)'" : context.debugDescription
        case .typeMismatch(let type, let context): return "field '\(path(context))' is not a \(type)"
        case .valueNotFound(let type, let context): return "field '\(path(context))' is null, expected a \(type)"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not JSON" : "field '\(path(context))': \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
