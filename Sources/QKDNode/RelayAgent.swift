import QKDAPI
import QKDCore
import QKDHybrid
import QKDKeyPool
import QKDRouting
import QKDStore
import QKDTopology
import QKDWire

/// The shell around the node's `RelayNode`, on the event loop: it gives the instance the pools
/// (`PoolKeys`) and the links' levels, holds the continuations of ETSI 014 requests, and
/// carries out the instance's directives (stores application keys, answers requests, computes
/// `relay show` digests). Not thread-safe: the event loop owns it.
final class RelayAgent {
    enum Action {
        case send(to: NodeID, kind: MessageKind, payload: [UInt8])
        case reply(bytes: [UInt8], to: [UInt8])
        case log(LogLevel, String, [String: String])
    }

    private var instance: RelayNode
    let pools: NodePools
    /// The most key bits one pair of SAEs may have waiting here (topology `kme`).
    let maxWaiting: Int
    /// The pairs with a key stock (topology `key_stocks`): their keys waiting here for the
    /// slave never expire, since the master's KME holds the other end in its stock.
    let stockedPairs: Set<NodePools.SAEPair>
    /// ETSI 014 requests under way, by the id the instance knows them by, and the ML-KEM secret
    /// of those for hybrid keys.
    private var requests: [UInt64: KeyRequests.Request] = [:]
    private var secrets: [UInt64: (secret: [UInt8], capsule: [UInt8])] = [:]
    /// This KME's ML-KEM-768 keys and the others' public keys (nil: hybrid keys refused).
    let kem: KMEKeys?
    private var lastRequest: UInt64 = 0

    init(node: NodeID, topology: Topology, pools: NodePools, kem: KMEKeys? = nil) {
        self.pools = pools
        self.kem = kem
        maxWaiting = topology.kme.maxWaitingBitsPerPair
        stockedPairs = Set(topology.keyStocks.map { NodePools.SAEPair(master: $0.master, slave: $0.slave) })
        instance = RelayNode(node: node, topology: topology, epoch: pools.starts)
    }

    /// What the relay did since the node started.
    var counters: RelayCounters { instance.counters }

    /// The link keys of relays: taken from the node's durable pools.
    struct PoolKeys: RelayKeys {
        let pools: NodePools
        let maxWaiting: Int
        var kem: KMEKeys? = nil
        func storageRefusal(for application: RelayApplication, acknowledgedBits: Int) -> String? {
            // A hybrid key's capsule must open here, its tag intact, before the relay is acknowledged.
            if !application.capsule.isEmpty {
                guard let kem else { return "this KME has no ML-KEM-768 key for hybrid keys" }
                do throws(KEMExchange.Refusal) {
                    _ = try HybridRelay.open(application.capsule, kem, master: application.master, slave: application.slave)
                } catch {
                    return "hybrid key refused: \(error.message)"
                }
            }
            let pair = NodePools.SAEPair(master: application.master, slave: application.slave)
            let bits = application.keyIDs.count * application.keySize
            if let refusal = NodePools.storageRefusal(waiting: pools.waitingBits(pair) + acknowledgedBits, adding: bits, limit: maxWaiting, pair: pair) {
                return refusal
            }
            return application.keyIDs.contains { pools.applicationKey($0) != nil } ? "a key ID of this relay is already held here" : nil
        }
        mutating func take(link: String, count: Int) -> [(id: KeyID, bits: BitVector)]? {
            pools.modify(link) { try? $0.consume(count: count) } ?? nil
        }
        mutating func take(link: String, named: [KeyID]) -> [BitVector]? {
            pools.modify(link) { try? $0.consume(named: named) } ?? nil
        }
        mutating func takeHop(incoming: String, named: [KeyID], outgoing: String, count: Int)
            -> (incoming: [BitVector], outgoing: [(id: KeyID, bits: BitVector)]?)?
        {
            pools.modify(incoming, outgoing) { a, b -> (incoming: [BitVector], outgoing: [(id: KeyID, bits: BitVector)]?)? in
                guard let inBits = try? a.consume(named: named) else { return nil }
                return (inBits, try? b.consume(count: count))
            } ?? nil
        }
    }

    /// Advertises, expires, times out (see `RelayNode.tick`). Pool levels are read without the
    /// pool lock (the quantum worker may hold it through a reconciliation step).
    func tick(at now: Instant, links: [(link: TopologyLink, up: Bool, compromised: Bool)]) -> [Action] {
        let views = links.map { l -> RelayNode.LinkView in
            let level = pools.level(l.link.name)
            return .init(link: l.link, up: l.up, compromised: l.compromised, synchronised: level?.synchronised ?? false,
                         spareKeys: level?.spareKeys ?? 0)
        }
        var keys = PoolKeys(pools: pools, maxWaiting: maxWaiting, kem: kem)
        let shared = pools
        return carryOut(instance.tick(at: now, links: views, keys: &keys) { shared.stocked(.init(master: $0.master, slave: $0.slave)) },
                        at: now)
    }

    func nextDeadline(after now: Instant) -> Instant { instance.nextDeadline(after: now) }

    /// A routing or relay message from a neighbour.
    func received(_ kind: MessageKind, _ payload: [UInt8], from: NodeID, at now: Instant, upNeighbours: [NodeID]) -> [Action] {
        var keys = PoolKeys(pools: pools, maxWaiting: maxWaiting, kem: kem)
        return carryOut(instance.received(kind, payload, from: from, at: now, upNeighbours: upNeighbours, keys: &keys), at: now)
    }

    func linkDown(to neighbour: NodeID, at now: Instant) -> [Action] {
        var keys = PoolKeys(pools: pools, maxWaiting: maxWaiting, kem: kem)
        return carryOut(instance.linkDown(to: neighbour, at: now, keys: &keys), at: now)
    }

    /// Starts the relay for a KME `enc_keys` request (its reply comes when the relay ends).
    func application(_ request: KeyRequests.Request, at now: Instant) -> [Action] {
        lastRequest += 1
        var capsule: [UInt8] = []
        if request.policy == .hybrid {
            guard let kem else {
                request.reply(.failure(KMEError(.serviceUnavailable, "this KME has no ML-KEM-768 keys: no hybrid key")))
                return []
            }
            do throws(KEMExchange.Refusal) {
                let sealed = try HybridRelay.seal(kem, destination: request.destination, master: request.master, slave: request.slave)
                capsule = sealed.capsule
                secrets[lastRequest] = (sealed.secret, sealed.capsule)
            } catch {
                request.reply(.failure(KMEError(.serviceUnavailable, "hybrid key: \(error.message)")))
                return []
            }
        }
        requests[lastRequest] = request
        let r = RelayNode.ApplicationRequest(id: lastRequest, master: request.master, slave: request.slave,
                                             destination: request.destination, number: request.number, size: request.size, capsule: capsule)
        var keys = PoolKeys(pools: pools, maxWaiting: maxWaiting, kem: kem)
        return carryOut(instance.request(r, at: now, keys: &keys), at: now)
    }

    /// Refuses every request still waiting (the node is stopping).
    func abandonApplications() {
        _ = carryOut(instance.abandonApplications(), at: Instant(nanoseconds: 0))
        for request in requests.values { request.reply(.failure(KMEError(.serviceUnavailable, "the node is stopping"))) }
        requests.removeAll()
        secrets.removeAll()
    }

    func control(_ request: ControlRequest, client: [UInt8], at now: Instant) -> [Action] {
        var keys = PoolKeys(pools: pools, maxWaiting: maxWaiting, kem: kem)
        let pools = self.pools
        return carryOut(instance.control(request, client: client, at: now, keys: &keys) { pools.applicationKey($0) }, at: now)
    }

    private func carryOut(_ directives: [RelayNode.Directive], at now: Instant) -> [Action] {
        var out: [Action] = []
        for directive in directives {
            switch directive {
            case .send(let to, let kind, let payload):
                out.append(.send(to: to, kind: kind, payload: payload))
            case .reply(let reply, let client):
                out.append(.reply(bytes: ControlCodec.encode(reply), to: client))
            case .log(let level, let message, let metadata):
                out.append(.log(level, message, metadata))
            case .storeApplicationKeys(var keys, let capsule):
                if !capsule.isEmpty {
                    // Opened before the relay was acknowledged (storageRefusal); opened again here.
                    guard let kem, let first = keys.first,
                          let secret = try? HybridRelay.open(capsule, kem, master: first.master, slave: first.slave) else {
                        out.append(.log(.error, "a hybrid key's capsule no longer opens: its keys are not stored", ["keys": "\(keys.count)"]))
                        continue
                    }
                    keys = HybridRelay.combine(keys, secret: secret, capsule: capsule)
                }
                let refused = pools.depositApplicationKeys(keys, at: now)
                if !refused.isEmpty {
                    out.append(.log(.warning, "relayed application keys refused: their key IDs are already held here",
                                    ["key_IDs": refused.map(\.uuidString).joined(separator: ",")]))
                }
            case .answer(let id, let result):
                let sealed = secrets.removeValue(forKey: id)
                let combined = result.map { keys in sealed.map { HybridRelay.combine(keys, secret: $0.secret, capsule: $0.capsule) } ?? keys }
                requests.removeValue(forKey: id)?.reply(combined.mapError { KMEError(.serviceUnavailable, $0.message) })
            case .show(var report, let key, let salt, let client):
                if let salt, key.count >= KeyDigester.minimumBits, let id = KeyID(uuidString: report.keyID) {
                    report.digest = KeyDigester.digest(id: id, bits: key, salt: salt)
                }
                out.append(.reply(bytes: ControlCodec.encode(ControlReply(relay: report)), to: client))
            case .expireApplicationKeys(let ttlNs):
                let n = pools.expireApplicationKeys(at: now, ttlNs: ttlNs, keeping: stockedPairs)
                if n > 0 { out.append(.log(.notice, "application keys expired uncollected", ["count": "\(n)"])) }
            case .stockKeys(let keys):
                let refused = pools.depositStock(keys)
                if !refused.isEmpty {
                    out.append(.log(.warning, "relayed stock keys refused: their key IDs are already stocked here",
                                    ["key_IDs": refused.map(\.uuidString).joined(separator: ",")]))
                }
            }
        }
        return out
    }
}
