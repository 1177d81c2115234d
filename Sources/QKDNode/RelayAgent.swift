import QKDAPI
import QKDCore
import QKDLink
import QKDNodeCore
import QKDKeyPool
import QKDRouting
import QKDStore
import QKDTopology
import QKDWire

/// The node's link-state routing and key relay, on the event loop: it floods this node's link
/// states, keeps the network view, answers `relay`, `routes` and `relayShow` control requests,
/// and runs `KeyRelay` with the node's durable pools. Not thread-safe: the event loop owns it.
final class RelayAgent {
    enum Action {
        case send(to: NodeID, kind: MessageKind, payload: [UInt8])
        case reply(bytes: [UInt8], to: [UInt8])
        case log(LogLevel, String, [String: String])
    }

    /// A relayed key this node holds releasable (source or destination), for the KME.
    struct Delivered {
        var key: BitVector
        var path: [NodeID]
        var at: Instant
    }

    let node: NodeID
    let topology: Topology
    let pools: NodePools
    private var relay: KeyRelay
    private(set) var database: LinkStateDatabase
    private var sequence: UInt64
    private var lastAdvertised: (at: Instant, links: [LinkStateAdvertisement.Entry])?
    private var lastExpiry = Instant(nanoseconds: 0)
    private var lastSynchronised: [Bool] = []
    private var ids: Xoshiro256
    private var waiting: [KeyID: (client: [UInt8], started: Instant)] = [:]
    /// ETSI 014 requests whose relay is under way, by relay ID, with the attempts made.
    private var applications: [KeyID: (request: KeyRequests.Request, attempts: Int)] = [:]
    /// A request whose relay fails is retried on a fresh route (new relay and key IDs) this many
    /// times in all, then refused with 503.
    let maxAttempts = 3
    /// Keys relayed here that no slave SAE collected are forgotten after this long.
    let applicationKeyTTLNs: UInt64 = 3_600_000_000_000
    private(set) var delivered: [KeyID: Delivered] = [:]
    /// What the relay did since the node started (for `status` and `qkdctl watch`).
    private(set) var counters = RelayCounters()
    /// Released keys no application collected are forgotten after this long.
    let deliveredTTLNs: UInt64 = 600_000_000_000
    /// Link states are advertised at least this often (and at once when a link goes up or
    /// down); key counts in between are up to this old.
    let advertiseEveryNs: UInt64 = 5_000_000_000

    init(node: NodeID, topology: Topology, pools: NodePools) {
        self.node = node
        self.topology = topology
        self.pools = pools
        relay = KeyRelay(node: node, topology: topology)
        database = LinkStateDatabase(topology: topology)
        sequence = pools.starts << 32
        ids = Xoshiro256(seed: SeedTree(root: topology.seed).seed(for: "relay-ids/\(node)/\(pools.starts)"))
    }

    struct PoolKeys: RelayKeys {
        let pools: NodePools
        mutating func take(link: String, count: Int, owner: String, at now: Instant) -> [(id: KeyID, bits: BitVector)]? {
            pools.modify(link) { try? $0.consume(count: count, at: now) } ?? nil
        }
        mutating func take(link: String, named: [KeyID], owner: String, at now: Instant) -> [BitVector]? {
            pools.modify(link) { try? $0.consume(named: named, at: now) } ?? nil
        }
        mutating func takeHop(incoming: String, named: [KeyID], outgoing: String, count: Int, owner: String, at now: Instant)
            -> (incoming: [BitVector], outgoing: [(id: KeyID, bits: BitVector)]?)?
        {
            pools.modify(incoming, outgoing) { a, b -> (incoming: [BitVector], outgoing: [(id: KeyID, bits: BitVector)]?)? in
                guard let inBits = try? a.consume(named: named, at: now) else { return nil }
                return (inBits, try? b.consume(count: count, at: now))
            } ?? nil
        }
    }

    // MARK: Link state

    /// Advertises this node's links when they changed or `advertiseEveryNs` passed; voids relays
    /// whose deadline passed.
    func tick(at now: Instant, links: [(link: TopologyLink, up: Bool, compromised: Bool)]) -> [Action] {
        var out = relayActions(relay.tick(at: now), at: now)
        for (id, d) in delivered where now.nanoseconds(since: d.at) > deliveredTTLNs { delivered[id] = nil }
        if now.nanoseconds(since: lastExpiry) > 10_000_000_000 {
            lastExpiry = now
            let n = pools.expireApplicationKeys(at: now, ttlNs: applicationKeyTTLNs)
            if n > 0 { out.append(.log(.notice, "application keys expired uncollected", ["count": "\(n)"])) }
        }
        // Up/down as last advertised; a neighbour that just came up gets the whole view at once
        // (database exchange).
        let before = Dictionary(uniqueKeysWithValues: (lastAdvertised?.links ?? []).map { ($0.link, $0.up) })
        let wasCompromised = Dictionary(uniqueKeysWithValues: (lastAdvertised?.links ?? []).map { ($0.link, $0.compromised) })
        for l in links where l.up && before[l.link.index] != true {
            guard let peer = l.link.peer(of: node) else { continue }
            for lsa in database.advertisements.values where lsa.origin != node.rawValue {
                out.append(.send(to: peer, kind: .linkState, payload: lsa.encoded()))
            }
        }
        // A pool that just agreed with its peer (after a link came up) makes its keys usable.
        // Pool levels are read only while an up link's pool has not agreed yet or the up links
        // changed, not after every event.
        var changed = lastAdvertised == nil || links.contains { before[$0.link.index] != $0.up || wasCompromised[$0.link.index] != $0.compromised }
        if changed || lastSynchronised.contains(false) {
            let synchronised = links.filter(\.up).map { l in pools.level(l.link.name)?.synchronised ?? false }
            changed = changed || synchronised != lastSynchronised
            lastSynchronised = synchronised
        }
        if changed || lastAdvertised.map({ now.nanoseconds(since: $0.at) >= advertiseEveryNs }) ?? true {
            // Key counts are read only when advertising (this runs after every event), from the
            // pools' levels: never waiting on the pool lock the quantum worker may hold.
            let entries = links.map { l -> LinkStateAdvertisement.Entry in
                let spare = pools.level(l.link.name)?.spareKeys ?? 0
                return .init(link: l.link.index, up: l.up, compromised: l.compromised, availableKeys: UInt32(min(Int(UInt32.max), spare)))
            }
            sequence += 1
            let lsa = LinkStateAdvertisement(origin: node.rawValue, sequence: sequence, links: entries)
            database.received(lsa)
            lastAdvertised = (now, entries)
            let payload = lsa.encoded()
            out += links.filter(\.up).compactMap { l in l.link.peer(of: node).map { .send(to: $0, kind: .linkState, payload: payload) } }
        }
        return out
    }

    func nextDeadline(after now: Instant) -> Instant {
        (lastAdvertised?.at ?? now).advanced(byNanoseconds: advertiseEveryNs)
    }

    /// A routing or relay message from a neighbour.
    func received(_ kind: MessageKind, _ payload: [UInt8], from: NodeID, at now: Instant, upNeighbours: [NodeID]) -> [Action] {
        if kind == .linkState {
            guard let lsa = try? LinkStateAdvertisement.decode(payload) else {
                return [.log(.warning, "malformed link-state advertisement", ["peer": from.rawValue])]
            }
            guard lsa.origin != node.rawValue, database.received(lsa) else { return [] }
            return upNeighbours.filter { $0 != from }.map { .send(to: $0, kind: .linkState, payload: payload) }
        }
        var keys = PoolKeys(pools: pools)
        let directives = relay.received(kind, payload, from: from, at: now, keys: &keys)
        if kind == .relayForward, directives.contains(where: { if case .send(_, .relayForward, _) = $0 { true } else { false } }) {
            counters.forwarded += 1
        }
        return relayActions(directives, at: now)
    }

    func linkDown(to neighbour: NodeID, at now: Instant) -> [Action] {
        relayActions(relay.linkDown(to: neighbour), at: now)
    }

    struct NoPath: Error {
        let message: String
    }

    /// The path a relay of `bits` bits to `destination` takes now, or why there is none (the
    /// first links left out, with their reasons).
    func path(to destination: NodeID, bits: Int) -> Result<LinkStateDatabase.Route, NoPath> {
        let decision = database.route(from: node, to: destination, keys: (bits + relay.keyBits - 1) / relay.keyBits)
        if let route = decision.route { return .success(route) }
        let why = decision.excluded.prefix(8).map { "\($0.link): \($0.reason)" }.joined(separator: "; ")
        return .failure(NoPath(message: "no usable path from \(node) to \(destination) for \(bits) bits (\(why))"))
    }

    /// `path(to:bits:)` for a relay this node is asked for, counted (and a refusal with it).
    private func relayPath(to destination: NodeID, bits: Int) -> Result<LinkStateDatabase.Route, NoPath> {
        counters.requested += 1
        let result = path(to: destination, bits: bits)
        if case .failure(let why) = result {
            counters.noPath += 1
            counters.lastFailure = why.message
        }
        return result
    }

    // MARK: ETSI GS QKD 014

    /// Starts the relay for a KME `enc_keys` request (the reply comes when it ends).
    func application(_ request: KeyRequests.Request, attempts: Int = 0, at now: Instant) -> [Action] {
        let bits = request.number * request.size
        let route: LinkStateDatabase.Route
        switch relayPath(to: request.destination, bits: bits) {
        case .success(let r): route = r
        case .failure(let why):
            request.reply(.failure(KMEError(.serviceUnavailable, why.message)))
            return [.log(.warning, "key request refused: no path", ["master": request.master, "slave": request.slave])]
        }
        let id = KeyID(randomHigh: ids.next(), randomLow: ids.next())
        let keyIDs = (0..<request.number).map { _ in KeyID(randomHigh: ids.next(), randomLow: ids.next()) }
        let app = RelayApplication(master: request.master, slave: request.slave, keySize: request.size, keyIDs: keyIDs)
        applications[id] = (request, attempts + 1)
        counters.started += 1
        var keys = PoolKeys(pools: pools)
        return [.log(.info, "key request relay started", ["relay.id": "\(id)", "master": request.master, "slave": request.slave,
                                                           "path": route.nodes.map(\.rawValue).joined(separator: ">")])]
            + relayActions(relay.start(relay: id, path: route.nodes, bits: bits, application: app, at: now, keys: &keys), at: now)
    }

    /// The application keys an end-to-end key splits into.
    static func split(_ key: BitVector, _ app: RelayApplication, path: [NodeID]) -> [ApplicationKey] {
        app.keyIDs.enumerated().map { i, id in
            ApplicationKey(id: id, master: app.master, slave: app.slave, bits: key.slice(from: i * app.keySize, length: app.keySize),
                           path: path.map(\.rawValue))
        }
    }

    /// Refuses every request still waiting (the node is stopping).
    func abandonApplications() {
        for (_, entry) in applications { entry.request.reply(.failure(KMEError(.serviceUnavailable, "the node is stopping"))) }
        applications.removeAll()
    }

    // MARK: Control

    func control(_ request: ControlRequest, client: [UInt8], at now: Instant) -> [Action] {
        func fail(_ message: String) -> [Action] { [.reply(bytes: ControlCodec.encode(ControlReply(error: message)), to: client)] }
        switch request.command {
        case .routes:
            guard let to = request.to, topology.node(NodeID(to)) != nil else { return fail("routes: unknown destination '\(request.to ?? "")'") }
            let bits = request.bits ?? 256
            let decision = database.route(from: node, to: NodeID(to), keys: (bits + 255) / 256)
            let report = RouteReport(from: node.rawValue, to: to, path: decision.route?.nodes.map(\.rawValue), hops: decision.route?.hops,
                                     distanceKm: decision.route?.distanceKm,
                                     excluded: decision.excluded.map { .init(link: $0.link, reason: $0.reason) })
            return [.reply(bytes: ControlCodec.encode(ControlReply(routes: report)), to: client)]
        case .relay:
            guard let to = request.to, topology.node(NodeID(to)) != nil, to != node.rawValue else {
                return fail("relay: '\(request.to ?? "")' is not another node of the topology")
            }
            let bits = request.bits ?? 256
            guard bits > 0, bits % 8 == 0, bits <= 65_536 else { return fail("relay: bits must be a multiple of 8 in 8...65536, got \(bits)") }
            let route: LinkStateDatabase.Route
            switch relayPath(to: NodeID(to), bits: bits) {
            case .success(let r): route = r
            case .failure(let why): return fail("relay: \(why.message)")
            }
            let id = KeyID(randomHigh: ids.next(), randomLow: ids.next())
            waiting[id] = (client, now)
            counters.started += 1
            var keys = PoolKeys(pools: pools)
            return [.log(.info, "relay started", ["relay.id": "\(id)", "path": route.nodes.map(\.rawValue).joined(separator: ">")])]
                + relayActions(relay.start(relay: id, path: route.nodes, bits: bits, at: now, keys: &keys), at: now)
        case .relayShow:
            guard let text = request.keyID, let id = KeyID(uuidString: text) else { return fail("relayShow: key_ID must be a UUID") }
            if delivered[id] == nil, let k = pools.applicationKey(id) {
                let report = RelayReport(keyID: text, path: k.path, ok: true, bits: k.bits.count,
                                         digest: request.salt.map { KeyDigester.digest(id: id, bits: k.bits, salt: $0) })
                return [.reply(bytes: ControlCodec.encode(ControlReply(relay: report)), to: client)]
            }
            guard let d = delivered[id] else { return fail("relayShow: no relayed key \(text) at \(node)") }
            let report = RelayReport(keyID: text, path: d.path.map(\.rawValue), ok: true, bits: d.key.count,
                                     digest: request.salt.map { KeyDigester.digest(id: id, bits: d.key, salt: $0) })
            return [.reply(bytes: ControlCodec.encode(ControlReply(relay: report)), to: client)]
        default:
            return fail("not a relay command")
        }
    }

    private func relayActions(_ directives: [KeyRelay.Directive], at now: Instant) -> [Action] {
        var out: [Action] = []
        for d in directives {
            if case .delivered(_, _, let path, _) = d {
                if path.last == node { counters.received += 1 } else { counters.delivered += 1 }
            }
            switch d {
            case .send(let to, let kind, let payload):
                out.append(.send(to: to, kind: kind, payload: payload))
            case .delivered(let id, let key, let path, let app?):
                if path.last == node {
                    // Destination: stored for the slave SAE before the relay's Done leaves.
                    pools.depositApplicationKeys(RelayAgent.split(key, app, path: path), at: now)
                    out.append(.log(.info, "relayed key stored for its slave SAE", ["relay.id": "\(id)", "slave": app.slave, "keys": "\(app.keyIDs.count)"]))
                } else if let entry = applications.removeValue(forKey: id) {
                    entry.request.reply(.success(RelayAgent.split(key, app, path: path)))
                    out.append(.log(.info, "relayed key released to its master SAE", ["relay.id": "\(id)", "master": app.master, "keys": "\(app.keyIDs.count)"]))
                }
            case .delivered(let id, let key, let path, nil):
                delivered[id] = Delivered(key: key, path: path, at: now)
                out.append(.log(.info, "relayed key released", ["relay.id": "\(id)", "path": path.map(\.rawValue).joined(separator: ">")]))
                if let (client, started) = waiting.removeValue(forKey: id) {
                    let report = RelayReport(keyID: id.uuidString, path: path.map(\.rawValue), ok: true,
                                             latencyMs: Double(now.nanoseconds(since: started)) / 1e6, bits: key.count)
                    out.append(.reply(bytes: ControlCodec.encode(ControlReply(relay: report)), to: client))
                }
            case .failed(let id, let reason):
                out.append(.log(.warning, "relay failed", ["relay.id": "\(id)", "reason": reason]))
                if applications[id] != nil || waiting[id] != nil {
                    counters.failed += 1
                    counters.lastFailure = reason
                }
                if let entry = applications.removeValue(forKey: id) {
                    if entry.attempts < maxAttempts {
                        out += application(entry.request, attempts: entry.attempts, at: now)
                    } else {
                        entry.request.reply(.failure(KMEError(.serviceUnavailable, "key relay failed \(entry.attempts) times; last: \(reason)")))
                    }
                }
                if let (client, _) = waiting.removeValue(forKey: id) {
                    out.append(.reply(bytes: ControlCodec.encode(ControlReply(error: "relay \(id) failed: \(reason)")), to: client))
                }
            }
        }
        return out
    }
}
