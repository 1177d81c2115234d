import QKDCore
import QKDKeyPool
import QKDTopology
import QKDWire

/// One node's routing and key relay, as a pure instance: it floods this node's link states and
/// keeps the network view (`LinkStateDatabase`), runs its part of every relay (`KeyRelay`),
/// starts the relays it is asked for (`qkdctl relay`, or an ETSI GS QKD 014 `enc_keys` request)
/// and retries a failed application request on a fresh route, keeps the key stocks of its
/// master SAEs filled (topology `key_stocks`: a relay whenever a path has the key), splits a relayed key into the
/// application's keys, keeps released keys for `relay show` for a while, and counts what it
/// did. The shell reaches the pools through `RelayKeys`, holds the continuations of the
/// requests (this instance names them by `ApplicationRequest.id`) and carries out the
/// directives in order.
///
/// Contract: `tick` MUST be called at the latest at `nextDeadline(after:)`; instants never
/// decrease. A `storeApplicationKeys` directive MUST be durable before the directives after it
/// are carried out (the destination's `relayDone` follows it).
public struct RelayNode: Sendable {
    /// What the node knows of one of its links when it ticks.
    public struct LinkView: Sendable, Equatable {
        public var link: TopologyLink
        public var up: Bool
        public var compromised: Bool
        /// The link's pool agreed with the peer's.
        public var synchronised: Bool
        /// Keys the pool can give to relays (beyond the authentication reserve).
        public var spareKeys: Int

        public init(link: TopologyLink, up: Bool, compromised: Bool, synchronised: Bool, spareKeys: Int) {
            self.link = link
            self.up = up
            self.compromised = compromised
            self.synchronised = synchronised
            self.spareKeys = spareKeys
        }
    }

    /// An ETSI 014 `enc_keys` request for a slave SAE at another node.
    public struct ApplicationRequest: Sendable, Equatable {
        /// The shell's name for the request (it holds the continuation).
        public var id: UInt64
        public var master: String
        public var slave: String
        public var destination: NodeID
        public var number: Int
        public var size: Int
        /// A hybrid key's ML-KEM capsule for the slave's KME (the shell made it); empty: QKD alone.
        public var capsule: [UInt8]

        public init(id: UInt64, master: String, slave: String, destination: NodeID, number: Int, size: Int, capsule: [UInt8] = []) {
            self.id = id
            self.master = master
            self.slave = slave
            self.destination = destination
            self.number = number
            self.size = size
            self.capsule = capsule
        }
    }

    public enum Directive: Sendable, Equatable {
        case send(to: NodeID, kind: MessageKind, payload: [UInt8])
        case reply(ControlReply, to: [UInt8])
        case log(LogLevel, String, [String: String])
        /// Store these keys for their slave SAE, durably, before what follows; `capsule`: the
        /// relay's ML-KEM capsule (a hybrid key: the shell combines before it stores).
        case storeApplicationKeys([ApplicationKey], capsule: [UInt8])
        /// Answer an application request: its keys, or why there are none (503 at the edge).
        case answer(request: UInt64, Result<[ApplicationKey], Refusal>)
        /// Answer a `relayShow` with `report` and, given a salt, the keyed digest of `key` (the
        /// shell computes it: HMAC lives with the store).
        case show(RelayReport, key: BitVector, salt: UInt64?, to: [UInt8])
        /// Forget application keys that waited longer than this for their slave SAE.
        case expireApplicationKeys(olderThanNs: UInt64)
        /// Add these keys to their pair's stock, durably (the relay that made them is done).
        case stockKeys([ApplicationKey])
    }

    /// Why an application request got no key.
    public struct Refusal: Error, Sendable, Equatable {
        public var message: String

        public init(_ message: String) { self.message = message }
    }

    /// A relayed key this node holds releasable (source or destination), for `relay show`.
    public struct Delivered: Sendable, Equatable {
        public var key: BitVector
        public var path: [NodeID]
        public var at: Instant
    }

    public let node: NodeID
    public let topology: Topology
    private var relay: KeyRelay
    public private(set) var database: LinkStateDatabase
    private var sequence: UInt64
    private var lastAdvertised: (at: Instant, links: [LinkStateAdvertisement.Entry])?
    private var lastExpiry = Instant(nanoseconds: 0)
    private var lastSynchronised: [Bool] = []
    /// Key IDs of relays started here: secret randomness (unguessable IDs unless reproducible).
    private var ids: SecretRandom
    /// Control relays under way: who asked, and when.
    private var waiting: [KeyID: (client: [UInt8], started: Instant)] = [:]
    /// Application requests whose relay is under way, by relay ID, with the attempts made.
    private var applications: [KeyID: (request: ApplicationRequest, attempts: Int)] = [:]
    /// The key stocks this node fills (their master SAE is attached here), and the relays under
    /// way for them (by relay ID: which stock each fills), at most one per stock.
    public let stocks: [KeyStock]
    private var stockRelays: [KeyID: Int] = [:]
    /// A stock whose relay failed starts the next one no earlier than this.
    private var stockRetry: [Int: Instant] = [:]
    /// Keys one stock relay makes at most.
    public let stockBatch = 16
    /// How long a stock waits after a failed relay before the next.
    public let stockRetryNs: UInt64 = 1_000_000_000
    public private(set) var delivered: [KeyID: Delivered] = [:]
    /// Pairs of SAEs (master, slave) whose destination refused to hold more keys, until when,
    /// and why: their requests are answered at once until then instead of spending link keys
    /// on relays the destination would refuse again.
    private var heldOff: [String: (until: Instant, reason: String)] = [:]
    /// What the relay did since the node started (for `status` and `qkdctl watch`).
    public private(set) var counters = RelayCounters()

    /// A request whose relay fails is retried on a fresh route (new relay and key IDs) this many
    /// times in all, then refused.
    public let maxAttempts = 3
    /// Keys relayed here that no slave SAE collected are forgotten after this long (topology
    /// `kme.key_retention_s`).
    public var applicationKeyTTLNs: UInt64 { topology.kme.keyRetentionNs }
    /// After a destination refused a pair's keys, the pair's requests are refused here for this
    /// long (the slave SAE collects in the meantime).
    public let refusalHoldNs: UInt64 = 10_000_000_000
    /// Released keys (for `relay show`) are forgotten after this long.
    public let deliveredTTLNs: UInt64 = 600_000_000_000
    /// Link states are advertised at least this often (and at once when a link changes).
    public let advertiseEveryNs: UInt64 = 5_000_000_000
    /// How often expired application keys are looked for.
    public let expiryEveryNs: UInt64 = 10_000_000_000

    /// `epoch`: the store's start count (relay and key IDs differ across restarts). Sequence
    /// numbers of advertisements start above every earlier incarnation's.
    public init(node: NodeID, topology: Topology, epoch: UInt64, relayTimeoutMs: UInt64 = 5000) {
        self.node = node
        self.topology = topology
        relay = KeyRelay(node: node, topology: topology, timeoutMs: relayTimeoutMs)
        database = LinkStateDatabase(topology: topology)
        sequence = epoch << 32
        ids = .make(topology.secrecy, seeds: SeedTree(root: topology.seed), label: "relay-ids/\(node)/\(epoch)")
        stocks = topology.keyStocks.filter { stock in topology.saes.first { $0.id == stock.master }?.node == node }
    }

    /// Requests whose relay is under way (control and application).
    public var pending: Int { waiting.count + applications.count }

    // MARK: Link state

    /// Voids relays whose deadline passed, forgets old released keys, asks for the expiry of
    /// uncollected application keys, advertises this node's links when they changed or
    /// `advertiseEveryNs` passed (a neighbour that just came up gets the whole view), and starts
    /// a relay for each key stock below its size that a path has the key for; `stocked` gives
    /// a stock's keys.
    public mutating func tick(at now: Instant, links: [LinkView], keys: inout some RelayKeys,
                              stocked: (KeyStock) -> Int = { _ in 0 }) -> [Directive] {
        var out = relayed(relay.tick(at: now), at: now, keys: &keys)
        for (id, d) in delivered where now.nanoseconds(since: d.at) > deliveredTTLNs { delivered[id] = nil }
        if now.nanoseconds(since: lastExpiry) > expiryEveryNs {
            lastExpiry = now
            out.append(.expireApplicationKeys(olderThanNs: applicationKeyTTLNs))
        }
        let before = Dictionary(uniqueKeysWithValues: (lastAdvertised?.links ?? []).map { ($0.link, $0.up) })
        let wasCompromised = Dictionary(uniqueKeysWithValues: (lastAdvertised?.links ?? []).map { ($0.link, $0.compromised) })
        for l in links where l.up && before[l.link.index] != true {
            guard let peer = l.link.peer(of: node) else { continue }
            for lsa in database.advertisements.values where lsa.origin != node.rawValue {
                out.append(.send(to: peer, kind: .linkState, payload: lsa.encoded()))
            }
        }
        // A pool that just agreed with its peer (after a link came up) makes its keys usable.
        let synchronised = links.filter(\.up).map(\.synchronised)
        let changed = lastAdvertised == nil || synchronised != lastSynchronised
            || links.contains { before[$0.link.index] != $0.up || wasCompromised[$0.link.index] != $0.compromised }
        lastSynchronised = synchronised
        if changed || lastAdvertised.map({ now.nanoseconds(since: $0.at) >= advertiseEveryNs }) ?? true {
            let entries = links.map { l in
                LinkStateAdvertisement.Entry(link: l.link.index, up: l.up, compromised: l.compromised,
                                             availableKeys: UInt32(min(Int(UInt32.max), l.synchronised ? l.spareKeys : 0)))
            }
            sequence += 1
            let lsa = LinkStateAdvertisement(origin: node.rawValue, sequence: sequence, links: entries)
            database.received(lsa, at: now)
            lastAdvertised = (now, entries)
            let payload = lsa.encoded()
            out += links.filter(\.up).compactMap { l in l.link.peer(of: node).map { .send(to: $0, kind: .linkState, payload: payload) } }
        }
        return out + fillStocks(at: now, stocked: stocked, keys: &keys)
    }

    /// A relay for each stock below its size with none under way, when a path has the key
    /// now. A stock without one waits quietly (across a satellite, for hours): nothing is
    /// logged or counted until a relay starts.
    private mutating func fillStocks(at now: Instant, stocked: (KeyStock) -> Int, keys: inout some RelayKeys) -> [Directive] {
        var out: [Directive] = []
        let busy = Set(stockRelays.values)
        for (i, stock) in stocks.enumerated() where !busy.contains(i) {
            if let retry = stockRetry[i], now < retry { continue }
            let number = min(stock.keys - stocked(stock), stockBatch)
            guard number > 0, let destination = topology.saes.first(where: { $0.id == stock.slave })?.node else { continue }
            let bits = number * stock.keySize
            guard let route = database.route(from: node, to: destination, keys: relay.keysPerHop(bits: bits)).route else { continue }
            let id = nextKeyID()
            let app = RelayApplication(master: stock.master, slave: stock.slave, keySize: stock.keySize,
                                       keyIDs: (0..<number).map { _ in nextKeyID() })
            stockRelays[id] = i
            counters.started += 1
            out.append(.log(.info, "key stock relay started", ["relay.id": "\(id)", "master": stock.master, "slave": stock.slave,
                                                               "keys": "\(number)", "path": route.nodes.map(\.rawValue).joined(separator: ">")]))
            out += relayed(relay.start(relay: id, path: route.nodes, bits: bits, application: app, at: now, keys: &keys), at: now, keys: &keys)
        }
        return out
    }

    /// When `tick` must next run: the next advertisement (relay timeouts are checked on every
    /// tick, and the shell ticks at least every 100 ms).
    public func nextDeadline(after now: Instant) -> Instant {
        (lastAdvertised?.at ?? now).advanced(byNanoseconds: advertiseEveryNs)
    }

    /// A routing or relay message from a neighbour.
    public mutating func received(_ kind: MessageKind, _ payload: [UInt8], from: NodeID, at now: Instant, upNeighbours: [NodeID],
                                  keys: inout some RelayKeys) -> [Directive] {
        if kind == .linkState {
            guard let lsa = try? LinkStateAdvertisement.decode(payload) else {
                return [.log(.warning, "malformed link-state advertisement", ["peer": from.rawValue])]
            }
            if lsa.origin == node.rawValue {
                // One of its own, numbered above what it sent: forged or from an earlier
                // incarnation. Advertise above it at the next tick (OSPF's rule for a
                // self-originated LSA, RFC 2328 §13.4), so no view of this node is held by it.
                guard lsa.sequence > sequence else { return [] }  // its own, flooded back
                if LinkStateDatabase.epoch(lsa.sequence) <= LinkStateDatabase.epoch(sequence) + 1 { sequence = lsa.sequence }
                lastAdvertised = nil
                return [.log(.warning, "link-state advertisement of this node numbered above its own", ["peer": from.rawValue, "sequence": "\(lsa.sequence)"])]
            }
            if let refusal = database.refusal(of: lsa, at: now) {
                guard refusal.isSuspicious else { return [] }
                return [.log(.warning, "link-state advertisement refused", ["peer": from.rawValue, "origin": lsa.origin, "reason": "\(refusal)"])]
            }
            return upNeighbours.filter { $0 != from }.map { .send(to: $0, kind: .linkState, payload: payload) }
        }
        let directives = relay.received(kind, payload, from: from, at: now, keys: &keys)
        if kind == .relayForward, directives.contains(where: { if case .send(_, .relayForward, _) = $0 { true } else { false } }) {
            counters.forwarded += 1
        }
        return relayed(directives, at: now, keys: &keys)
    }

    /// A neighbour's link went down: every relay through it is void.
    public mutating func linkDown(to neighbour: NodeID, at now: Instant, keys: inout some RelayKeys) -> [Directive] {
        relayed(relay.linkDown(to: neighbour), at: now, keys: &keys)
    }

    /// The path a relay of `bits` bits to `destination` takes now, or why there is none (the
    /// first links left out, with their reasons).
    public func path(to destination: NodeID, bits: Int) -> Result<LinkStateDatabase.Route, Refusal> {
        let decision = database.route(from: node, to: destination, keys: relay.keysPerHop(bits: bits))
        if let route = decision.route { return .success(route) }
        let why = decision.excluded.prefix(8).map { "\($0.link): \($0.reason)" }.joined(separator: "; ")
        return .failure(Refusal("no usable path from \(node) to \(destination) for \(bits) bits (\(why))"))
    }

    /// `path(to:bits:)` for a relay this node is asked for, counted (and a refusal with it).
    private mutating func relayPath(to destination: NodeID, bits: Int) -> Result<LinkStateDatabase.Route, Refusal> {
        counters.requested += 1
        let result = path(to: destination, bits: bits)
        if case .failure(let why) = result {
            counters.noPath += 1
            counters.lastFailure = why.message
        }
        return result
    }

    private mutating func nextKeyID() -> KeyID { KeyID(randomHigh: ids.next(), randomLow: ids.next()) }

    // MARK: ETSI GS QKD 014

    /// Starts the relay for an application request (the answer comes when it ends).
    public mutating func request(_ request: ApplicationRequest, at now: Instant, keys: inout some RelayKeys) -> [Directive] {
        let pair = RelayNode.pair(request)
        if let hold = heldOff[pair] {
            if now < hold.until {
                counters.heldOff += 1
                return [.answer(request: request.id, .failure(Refusal(hold.reason)))]
            }
            heldOff[pair] = nil
        }
        return start(request, attempts: 0, at: now, keys: &keys)
    }

    static func pair(_ r: ApplicationRequest) -> String { "\(r.master)\u{0}\(r.slave)" }

    private mutating func start(_ request: ApplicationRequest, attempts: Int, at now: Instant, keys: inout some RelayKeys) -> [Directive] {
        let bits = request.number * request.size
        let route: LinkStateDatabase.Route
        switch relayPath(to: request.destination, bits: bits) {
        case .success(let r): route = r
        case .failure(let why):
            return [.answer(request: request.id, .failure(why)),
                    .log(.warning, "key request refused: no path", ["master": request.master, "slave": request.slave])]
        }
        let id = nextKeyID()
        let keyIDs = (0..<request.number).map { _ in nextKeyID() }
        let app = RelayApplication(master: request.master, slave: request.slave, keySize: request.size, keyIDs: keyIDs,
                                   capsule: request.capsule)
        applications[id] = (request, attempts + 1)
        counters.started += 1
        return [.log(.info, "key request relay started", ["relay.id": "\(id)", "master": request.master, "slave": request.slave,
                                                           "path": route.nodes.map(\.rawValue).joined(separator: ">")])]
            + relayed(relay.start(relay: id, path: route.nodes, bits: bits, application: app, at: now, keys: &keys), at: now, keys: &keys)
    }

    /// The application keys an end-to-end key splits into (`keySize` bits each, in order).
    public static func split(_ key: BitVector, _ app: RelayApplication, path: [NodeID]) -> [ApplicationKey] {
        app.keyIDs.enumerated().map { i, id in
            ApplicationKey(id: id, master: app.master, slave: app.slave, bits: key.slice(from: i * app.keySize, length: app.keySize),
                           path: path.map(\.rawValue))
        }
    }

    /// Refuses every application request still waiting (the node is stopping).
    public mutating func abandonApplications() -> [Directive] {
        defer { applications.removeAll() }
        return applications.values.map { .answer(request: $0.request.id, .failure(Refusal("the node is stopping"))) }
    }

    // MARK: Control

    /// A `routes`, `relay` or `relayShow` control request. `waitingKey` looks up an application
    /// key held here for its slave SAE.
    public mutating func control(_ request: ControlRequest, client: [UInt8], at now: Instant, keys: inout some RelayKeys,
                                 waitingKey: (KeyID) -> ApplicationKey?) -> [Directive] {
        func fail(_ message: String) -> [Directive] { [.reply(ControlReply(error: message), to: client)] }
        switch request {
        case .routes(let to, let bits):
            guard topology.node(NodeID(to)) != nil else { return fail("routes: unknown destination '\(to)'") }
            let decision = database.route(from: node, to: NodeID(to), keys: relay.keysPerHop(bits: bits))
            let report = RouteReport(from: node.rawValue, to: to, path: decision.route?.nodes.map(\.rawValue), hops: decision.route?.hops,
                                     distanceKm: decision.route?.distanceKm,
                                     excluded: decision.excluded.map { .init(link: $0.link, reason: $0.reason) })
            return [.reply(ControlReply(routes: report), to: client)]
        case .relay(let to, let bits):
            guard topology.node(NodeID(to)) != nil, to != node.rawValue else {
                return fail("relay: '\(to)' is not another node of the topology")
            }
            guard bits > 0, bits % 8 == 0, bits <= 65_536 else { return fail("relay: bits must be a multiple of 8 in 8...65536, got \(bits)") }
            let route: LinkStateDatabase.Route
            switch relayPath(to: NodeID(to), bits: bits) {
            case .success(let r): route = r
            case .failure(let why): return fail("relay: \(why.message)")
            }
            let id = nextKeyID()
            waiting[id] = (client, now)
            counters.started += 1
            return [.log(.info, "relay started", ["relay.id": "\(id)", "path": route.nodes.map(\.rawValue).joined(separator: ">")])]
                + relayed(relay.start(relay: id, path: route.nodes, bits: bits, at: now, keys: &keys), at: now, keys: &keys)
        case .relayShow(let text, let salt):
            guard let id = KeyID(uuidString: text) else { return fail("relayShow: key_ID must be a UUID") }
            let held: (bits: BitVector, path: [String], kind: String)? = delivered[id].map { ($0.key, $0.path.map(\.rawValue), "qkd") }
                ?? waitingKey(id).map { ($0.bits, $0.path, $0.kind) }
            guard let held else { return fail("relayShow: no relayed key \(text) at \(node)") }
            let report = RelayReport(keyID: text, path: held.path, ok: true, bits: held.bits.count, kind: held.kind)
            return [.show(report, key: held.bits, salt: salt, to: client)]
        default:
            return fail("not a relay command")
        }
    }

    // MARK: Relay outcomes

    /// The relay's directives as this node's: deliveries stored or answered, failures counted
    /// and retried on a fresh route (which takes keys: hence `keys`).
    private mutating func relayed(_ directives: [KeyRelay.Directive], at now: Instant, keys: inout some RelayKeys) -> [Directive] {
        var out: [Directive] = []
        for d in directives {
            switch d {
            case .send(let to, let kind, let payload):
                out.append(.send(to: to, kind: kind, payload: payload))
            case .delivered(let id, let key, let path, let app?):
                if path.last == node {
                    counters.received += 1
                    // Destination: stored for the slave SAE before the relay's Done leaves.
                    out.append(.storeApplicationKeys(RelayNode.split(key, app, path: path), capsule: app.capsule))
                    out.append(.log(.info, "relayed key stored for its slave SAE", ["relay.id": "\(id)", "slave": app.slave, "keys": "\(app.keyIDs.count)"]))
                } else {
                    counters.delivered += 1
                    if let entry = applications.removeValue(forKey: id) {
                        out.append(.answer(request: entry.request.id, .success(RelayNode.split(key, app, path: path))))
                        out.append(.log(.info, "relayed key released to its master SAE", ["relay.id": "\(id)", "master": app.master, "keys": "\(app.keyIDs.count)"]))
                    } else if stockRelays.removeValue(forKey: id) != nil {
                        out.append(.stockKeys(RelayNode.split(key, app, path: path)))
                        out.append(.log(.info, "relayed keys added to the key stock", ["relay.id": "\(id)", "master": app.master, "slave": app.slave,
                                                                                      "keys": "\(app.keyIDs.count)"]))
                    }
                }
            case .delivered(let id, let key, let path, nil):
                if path.last == node { counters.received += 1 } else { counters.delivered += 1 }
                delivered[id] = Delivered(key: key, path: path, at: now)
                out.append(.log(.info, "relayed key released", ["relay.id": "\(id)", "path": path.map(\.rawValue).joined(separator: ">")]))
                if let (client, started) = waiting.removeValue(forKey: id) {
                    let report = RelayReport(keyID: id.uuidString, path: path.map(\.rawValue), ok: true,
                                             latencyMs: Double(now.nanoseconds(since: started)) / 1e6, bits: key.count)
                    out.append(.reply(ControlReply(relay: report), to: client))
                }
            case .failed(let id, let cause, let reason):
                out.append(.log(.warning, "relay failed", ["relay.id": "\(id)", "reason": reason]))
                if applications[id] != nil || waiting[id] != nil || stockRelays[id] != nil {
                    counters.failed += 1
                    counters.lastFailure = reason
                }
                if let i = stockRelays.removeValue(forKey: id) {
                    stockRetry[i] = now.advanced(byNanoseconds: cause == .refusedByDestination ? refusalHoldNs : stockRetryNs)
                }
                if let entry = applications.removeValue(forKey: id) {
                    let refused = cause == .refusedByDestination
                    if refused { heldOff[RelayNode.pair(entry.request)] = (now.advanced(byNanoseconds: refusalHoldNs), reason) }
                    if refused {
                        out.append(.answer(request: entry.request.id, .failure(Refusal(reason))))
                    } else if entry.attempts < maxAttempts {
                        out += start(entry.request, attempts: entry.attempts, at: now, keys: &keys)
                    } else {
                        out.append(.answer(request: entry.request.id,
                                           .failure(Refusal("key relay failed \(entry.attempts) times; last: \(reason)"))))
                    }
                }
                if let (client, _) = waiting.removeValue(forKey: id) {
                    out.append(.reply(ControlReply(error: "relay \(id) failed: \(reason)"), to: client))
                }
            }
        }
        return out
    }
}
