import QKDCore
import Yams

extension TopologyParser {
    public static let keyStockKeys = ["master", "slave", "keys", "key_size"]
    public static let keyPolicyKeys = ["master", "slave", "policy"]
}

extension ParserContext {
    /// The `key_stocks:` list: pairs of SAEs at different nodes whose keys relays make ahead of
    /// requests, each at most once, within what the slave's KME may hold waiting for the pair.
    mutating func parseKeyStocks(_ top: Node.Mapping, saes: [SAE], kme: KMELimits) -> [KeyStock] {
        guard let value = top["key_stocks"] else { return [] }
        guard case .sequence(let items) = value else {
            fail(.wrongType, value, "key_stocks", "must be a list")
            return []
        }
        let byID = Dictionary(saes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var stocks: [KeyStock] = []
        var seen: [String: Int] = [:]
        for (i, path, map, item) in entries(Array(items), section: "key_stocks", keys: TopologyParser.keyStockKeys,
                                            shape: "key stock must be a mapping with master, slave and keys") {
            guard let (master, masterNode) = string(map, "master", path: path, required: true, owner: item),
                  let (slave, slaveNode) = string(map, "slave", path: path, required: true, owner: item),
                  let (keys, keysNode) = number(map, "keys", path: path, required: true, owner: item)
            else { continue }
            guard let m = byID[master] else {
                fail(.unknownNode, masterNode, "\(path).master", "unknown SAE '\(master)' (not in saes)")
                continue
            }
            guard let s = byID[slave] else {
                fail(.unknownNode, slaveNode, "\(path).slave", "unknown SAE '\(slave)' (not in saes)")
                continue
            }
            guard m.node != s.node else {
                fail(.invalidValue, slaveNode, "\(path).slave",
                     "SAE '\(slave)' is at \(s.node), the master's node: a stock is relayed, so its SAEs must be at different nodes")
                continue
            }
            guard keys.rounded() == keys, keys >= 1, keys <= Double(KeyStock.maximumKeys) else {
                fail(.outOfRange, keysNode, "\(path).keys", "must be an integer in 1...\(KeyStock.maximumKeys), got \(keys)")
                continue
            }
            var size = KeyStock.defaultKeySize
            if let (n, node) = number(map, "key_size", path: path, required: false, owner: item) {
                guard n.rounded() == n, n >= 8, n <= 8192, Int(n) % 8 == 0 else {
                    fail(.outOfRange, node, "\(path).key_size", "must be a multiple of 8 in 8...8192 bits, got \(n)")
                    continue
                }
                size = Int(n)
            }
            guard Int(keys) * size <= kme.maxWaitingBitsPerPair else {
                fail(.outOfRange, keysNode, "\(path).keys",
                     "\(Int(keys)) keys of \(size) bits exceed kme.max_waiting_bits_per_pair \(kme.maxWaitingBitsPerPair) (the slave's KME holds them)")
                continue
            }
            let pair = "\(master) -> \(slave)"
            if let first = seen[pair] {
                fail(.duplicateID, slaveNode, "\(path).slave", "duplicate key stock \(pair) (first at key_stocks[\(first)])")
                continue
            }
            seen[pair] = i
            stocks.append(KeyStock(master: master, slave: slave, keys: Int(keys), keySize: size))
        }
        return stocks
    }

    /// The `key_policies:` list: a policy per pair of known SAEs, each pair once.
    mutating func parseKeyPolicies(_ top: Node.Mapping, saes: [SAE]) -> [PairKeyPolicy] {
        guard let value = top["key_policies"] else { return [] }
        guard case .sequence(let items) = value else {
            fail(.wrongType, value, "key_policies", "must be a list")
            return []
        }
        let known = Set(saes.map(\.id))
        var out: [PairKeyPolicy] = []
        var seen: [String: Int] = [:]
        for (i, path, map, item) in entries(Array(items), section: "key_policies", keys: TopologyParser.keyPolicyKeys,
                                            shape: "key policy must be a mapping with master, slave and policy") {
            guard let (master, masterNode) = string(map, "master", path: path, required: true, owner: item),
                  let (slave, slaveNode) = string(map, "slave", path: path, required: true, owner: item),
                  let (text, policyNode) = string(map, "policy", path: path, required: true, owner: item)
            else { continue }
            guard known.contains(master) else {
                fail(.unknownNode, masterNode, "\(path).master", "unknown SAE '\(master)' (not in saes)")
                continue
            }
            guard known.contains(slave) else {
                fail(.unknownNode, slaveNode, "\(path).slave", "unknown SAE '\(slave)' (not in saes)")
                continue
            }
            guard let policy = KeyPolicy(text) else {
                fail(.invalidValue, policyNode, "\(path).policy", "'\(text)' is not a key policy (\(KeyPolicy.names))")
                continue
            }
            let pair = "\(master) -> \(slave)"
            if let first = seen[pair] {
                fail(.duplicateID, slaveNode, "\(path).slave", "duplicate key policy for \(pair) (first at key_policies[\(first)])")
                continue
            }
            seen[pair] = i
            out.append(PairKeyPolicy(master: master, slave: slave, policy: policy))
        }
        return out
    }
}
