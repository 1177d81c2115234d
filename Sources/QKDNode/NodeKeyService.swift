import Crypto
import QKDAPI
import QKDCore
import QKDKeyPool
import QKDStore
import QKDTopology

/// The node's answers to the ETSI GS QKD 014 API, on the HTTP server's threads. `status` and
/// `dec_keys` read and take from the pools (thread-safe); `enc_keys` for a slave SAE at another
/// node goes to the event loop (`KeyRequests`), which relays a key there and answers once the
/// destination holds it (ETSI GS QKD 020: released only after every hop acknowledged).
public struct NodeKeyService: KeyManagementService {
    let node: NodeID
    let topology: Topology
    let pools: NodePools
    let requests: KeyRequests
    /// Bits per key delivered, and the request limits announced in `status`.
    public static let keySize = 256
    public static let maxKeyPerRequest = 128
    public static let maxKeySize = 8192
    public static let minKeySize = 8

    public init(node: NodeID, topology: Topology, pools: NodePools, requests: KeyRequests) {
        self.node = node
        self.topology = topology
        self.pools = pools
        self.requests = requests
    }

    /// The calling SAE if it is attached to this KME (401 otherwise).
    func attached(_ caller: String) throws(KMEError) {
        guard let sae = topology.saes.first(where: { $0.id == caller }), sae.node == node else {
            throw KMEError(.unauthorized, "SAE '\(caller)' is not attached to KME \(node)")
        }
    }

    func known(_ sae: String, as role: String) throws(KMEError) -> SAE {
        guard let found = topology.saes.first(where: { $0.id == sae }) else { throw KMEError(.badRequest, "unknown \(role) SAE '\(sae)'") }
        return found
    }

    public func status(caller: String, slave: String) async throws(KMEError) -> KMEStatus {
        try attached(caller)
        let target = try known(slave, as: "slave")
        var (stored, capacity) = supply(toward: target.node)
        var keySize = NodeKeyService.keySize
        if let stock = topology.keyStock(master: caller, slave: slave) {
            // What enc_keys hands out at once: the pair's stock, not the links' keys.
            (stored, capacity, keySize) = (pools.stocked(.init(master: caller, slave: slave)), stock.keys, stock.keySize)
        }
        return KMEStatus(sourceKMEID: node.rawValue, targetKMEID: target.node.rawValue, masterSAEID: caller, slaveSAEID: slave,
                         keySize: keySize, storedKeyCount: min(stored, capacity), maxKeyCount: capacity,
                         maxKeyPerRequest: NodeKeyService.maxKeyPerRequest, maxKeySize: NodeKeyService.maxKeySize,
                         minKeySize: NodeKeyService.minKeySize)
    }

    public func encKeys(caller: String, slave: String, request: KMEKeyRequest) async throws(KMEError) -> [KMEKey] {
        try attached(caller)
        let target = try known(slave, as: "slave")
        let stock = topology.keyStock(master: caller, slave: slave)
        let number = request.number ?? 1, size = request.size ?? stock?.keySize ?? NodeKeyService.keySize
        let policy = try keyPolicy(master: caller, slave: slave, request: request)
        guard request.additionalSlaves.isEmpty else {
            throw KMEError(.badRequest, "additional_slave_SAE_IDs: key multicast is not supported (max_SAE_ID_count 0)")
        }
        guard number >= 1 else { throw KMEError(.badRequest, "number shall be at least 1, got \(number)") }
        guard number <= NodeKeyService.maxKeyPerRequest else {
            throw KMEError(.badRequest, "number \(number) exceeds max_key_per_request \(NodeKeyService.maxKeyPerRequest)")
        }
        guard size % 8 == 0 else { throw KMEError(.badRequest, "size shall be a multiple of 8") }
        guard size >= NodeKeyService.minKeySize, size <= NodeKeyService.maxKeySize else {
            throw KMEError(.badRequest, "size \(size) outside min_key_size \(NodeKeyService.minKeySize) ... max_key_size \(NodeKeyService.maxKeySize)")
        }
        let keys: [ApplicationKey]
        if let stock, policy == .qkd {
            // A stock holds QKD keys; a hybrid request for the pair is relayed when it comes.
            keys = try drawn(from: stock, number: number, size: size)
        } else if target.node == node {
            keys = try localKeys(master: caller, slave: slave, number: number, size: size)
        } else {
            keys = try await requests.submit(master: caller, slave: slave, destination: target.node, number: number, size: size,
                                             policy: policy).get()
        }
        return keys.map { KMEKey(id: $0.id.uuidString, bytes: $0.bits.bytes) }
    }

    public func decKeys(caller: String, master: String, ids: [String]) async throws(KMEError) -> [KMEKey] {
        try attached(caller)
        _ = try known(master, as: "master")
        guard ids.count <= NodeKeyService.maxKeyPerRequest else {
            throw KMEError(.badRequest, "\(ids.count) key IDs exceed max_key_per_request \(NodeKeyService.maxKeyPerRequest)")
        }
        var parsed: [KeyID] = []
        for text in ids {
            guard let id = KeyID(uuidString: text) else { throw KMEError(.badRequest, "key_ID '\(text.prefix(64))' is not a UUID") }
            parsed.append(id)
        }
        switch pools.collectApplicationKeys(parsed, slave: caller, master: master) {
        case .success(let keys):
            return keys.map { KMEKey(id: $0.id.uuidString, bytes: $0.bits.bytes) }
        case .failure(.notFound(let missing)):
            throw KMEError(.badRequest, "one or more keys specified are not found on KME (\(missing.prefix(4).map(\.uuidString).joined(separator: ", ")))")
        }
    }

    /// The extension that names a request's key policy (other tools send it).
    public static let policyExtension = "qkdnet_key_policy"
    /// The policies this KME makes keys with.
    public static let policiesServed: Set<KeyPolicy> = [.qkd, .hybrid]

    /// The request's policy: its `qkdnet_key_policy` extension (mandatory: 400 unless this KME
    /// makes such keys; optional: used when it does), else the topology's for the pair. Any
    /// other mandatory extension is 400, as ETSI GS QKD 014 (clause 6.2) says.
    func keyPolicy(master: String, slave: String, request: KMEKeyRequest) throws(KMEError) -> KeyPolicy {
        let others = request.mandatoryExtensions.filter { $0 != Self.policyExtension }
        guard others.isEmpty else {
            throw KMEError(.badRequest, "not all extension_mandatory parameters are supported (\(others.joined(separator: ", ")))")
        }
        let fallback = topology.keyPolicy(master: master, slave: slave)
        let mandatory = request.mandatoryExtensions.contains(Self.policyExtension)
        guard mandatory || request.optionalExtensions.contains(Self.policyExtension) else {
            guard Self.policiesServed.contains(fallback) else {
                throw KMEError(.serviceUnavailable, "key policy \(fallback) (topology) is not served by this KME yet")
            }
            return fallback
        }
        guard let text = request.extensionValues[Self.policyExtension], let asked = KeyPolicy(text) else {
            throw KMEError(.badRequest, "\(Self.policyExtension) must be one of \(KeyPolicy.names), got '\((request.extensionValues[Self.policyExtension] ?? "not a string").prefix(40))'")
        }
        if Self.policiesServed.contains(asked) { return asked }
        if mandatory {
            throw KMEError(.badRequest, "not all extension_mandatory parameters are supported (\(Self.policyExtension): \(asked) is not served by this KME yet)")
        }
        return Self.policiesServed.contains(fallback) ? fallback : .qkd
    }

    /// `number` keys from a pair's stock, at once: made ahead by relays, the slave's KME holds
    /// the same keys. 400 for a request the stock can never meet, 503 while it holds too few.
    func drawn(from stock: KeyStock, number: Int, size: Int) throws(KMEError) -> [ApplicationKey] {
        guard size == stock.keySize else {
            throw KMEError(.badRequest, "size \(size): the key stock of \(stock.master) -> \(stock.slave) holds \(stock.keySize)-bit keys (key_stocks)")
        }
        guard number <= stock.keys else {
            throw KMEError(.badRequest, "number \(number) exceeds the key stock of \(stock.master) -> \(stock.slave) (\(stock.keys) keys, key_stocks)")
        }
        guard let keys = pools.drawStock(.init(master: stock.master, slave: stock.slave), number: number) else {
            let held = pools.stocked(.init(master: stock.master, slave: stock.slave))
            throw KMEError(.serviceUnavailable,
                           "the key stock of \(stock.master) -> \(stock.slave) holds \(held) of the \(number) keys asked: relays refill it whenever a path has key")
        }
        return keys
    }

    /// Master and slave attached to this same node: no link is involved, so the keys come from
    /// the operating system's random source (as a real KME's local key generator would) and
    /// wait for the slave here, up to `kme.max_waiting_bits_per_pair` for one pair (503 beyond,
    /// checked before any key is made, and again as they are stored).
    func localKeys(master: String, slave: String, number: Int, size: Int) throws(KMEError) -> [ApplicationKey] {
        let pair = NodePools.SAEPair(master: master, slave: slave), limit = topology.kme.maxWaitingBitsPerPair
        if let refusal = NodePools.storageRefusal(waiting: pools.waitingBits(pair), adding: number * size, limit: limit, pair: pair) {
            throw KMEError(.serviceUnavailable, refusal)
        }
        var random = SystemRandomNumberGenerator()
        let keys = (0..<number).map { _ in
            let bytes = SymmetricKey(size: SymmetricKeySize(bitCount: size)).withUnsafeBytes { Array($0) }
            return ApplicationKey(id: KeyID(randomHigh: random.next(), randomLow: random.next()), master: master, slave: slave,
                                  bits: BitVector(bytes: bytes, count: size), path: [node.rawValue])
        }
        // Their retention starts at the next expiry pass.
        if let refusal = pools.depositLocalKeys(keys, pair: pair, limit: limit, at: Instant(nanoseconds: 0)) {
            throw KMEError(.serviceUnavailable, refusal)
        }
        return keys
    }

    /// Keys this node can put towards `destination` now: the spare keys (outside the
    /// authentication reserve) of its link on a fewest-hops path, and that pool's capacity. An
    /// upper bound: links further on may hold fewer (a relay checks them when it runs).
    func supply(toward destination: NodeID) -> (stored: Int, capacity: Int) {
        guard destination != node, let first = firstHop(toward: destination) else { return (0, 0) }
        return pools.read(first.name) { p in
            (max(0, p.availableKeys - p.configuration.authenticationReserve), p.configuration.maxKeyCount)
        } ?? (0, 0)
    }

    /// The link leaving this node on a fewest-hops path to `destination` (breadth first).
    func firstHop(toward destination: NodeID) -> TopologyLink? {
        var via: [NodeID: TopologyLink] = [:]
        var frontier = [node]
        var seen: Set<NodeID> = [node]
        while !frontier.isEmpty {
            var next: [NodeID] = []
            for n in frontier {
                for link in topology.links(of: n) {
                    guard let peer = link.peer(of: n), !seen.contains(peer) else { continue }
                    seen.insert(peer)
                    via[peer] = n == node ? link : via[n]
                    if peer == destination { return via[peer] }
                    next.append(peer)
                }
            }
            frontier = next
        }
        return nil
    }
}
