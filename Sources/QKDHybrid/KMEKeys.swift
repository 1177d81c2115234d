import Crypto
import Foundation
import QKDCore

/// A node's ML-KEM-768 key pair as a KME, and the public keys of every other KME (by node
/// ID): what hybrid keys are encapsulated to and decapsulated with. In a secret run `qkdctl up`
/// draws every pair from the OS CSPRNG and writes them under the run's PKI (`files`); in a
/// reproducible run each pair comes from the topology's seed (`derived`), so that one seed
/// gives one run. `description` shows no key.
public struct KMEKeys: Sendable, CustomStringConvertible {
    public let node: String
    public let privateKey: MLKEM768.PrivateKey
    /// The other KMEs' public keys, read from files; in a reproducible run derived on demand
    /// from `seeds` instead (a key pair per node of the network: a 105-node mesh would
    /// otherwise derive 11,000 at start).
    let publicKeys: [String: [UInt8]]
    let seeds: SeedTree?

    public init(node: String, privateKey: MLKEM768.PrivateKey, publicKeys: [String: [UInt8]], seeds: SeedTree? = nil) {
        self.node = node
        self.privateKey = privateKey
        self.publicKeys = publicKeys
        self.seeds = seeds
    }

    /// The public key of `node`'s KME.
    public func publicKey(of other: String) -> [UInt8]? {
        if let key = publicKeys[other] { return key }
        guard let seeds, let key = try? MLKEM768.PrivateKey(seedRepresentation: KMEKeys.derivedSeed(seeds, node: other), publicKey: nil) else {
            return nil
        }
        return Array(key.publicKey.rawRepresentation)
    }

    public var description: String { "ML-KEM-768 keys of \(node)" }

    /// A KME's 64-byte ML-KEM seed (d ‖ z, FIPS 203) from the seed tree (reproducible runs).
    public static func derivedSeed(_ seeds: SeedTree, node: String) -> [UInt8] {
        var stream = seeds.stream("kme-mlkem/\(node)")
        return (0..<8).flatMap { _ in withUnsafeBytes(of: stream.next().bigEndian, Array.init) }
    }

    /// `node`'s pair from the seed tree (reproducible runs); the others' public keys follow
    /// from the same tree when asked for.
    public static func derived(_ seeds: SeedTree, node: String) throws -> KMEKeys {
        let own = try MLKEM768.PrivateKey(seedRepresentation: derivedSeed(seeds, node: node), publicKey: nil)
        return KMEKeys(node: node, privateKey: own, publicKeys: [node: Array(own.publicKey.rawRepresentation)], seeds: seeds)
    }

    /// The files of a secret run: `directory/NODE.seed` (64 bytes, mode 0600) and
    /// `directory/NODE.pub` (1,184 bytes) per KME.
    public static func seedPath(_ directory: String, _ node: String) -> String { "\(directory)/\(node).seed" }
    public static func publicPath(_ directory: String, _ node: String) -> String { "\(directory)/\(node).pub" }

    /// Makes the pair of every node that has none yet (from the OS CSPRNG); returns how many.
    @discardableResult
    public static func ensure(directory: String, nodes: [String]) throws -> Int {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var made = 0
        for n in nodes where !(fm.fileExists(atPath: seedPath(directory, n)) && fm.fileExists(atPath: publicPath(directory, n))) {
            let key = try MLKEM768.PrivateKey()
            guard fm.createFile(atPath: seedPath(directory, n), contents: key.seedRepresentation, attributes: [.posixPermissions: 0o600]),
                  fm.createFile(atPath: publicPath(directory, n), contents: key.publicKey.rawRepresentation, attributes: [.posixPermissions: 0o644])
            else { throw KEMExchange.Refusal("cannot write the ML-KEM keys of \(n) under '\(directory)'") }
            made += 1
        }
        return made
    }

    /// `node`'s private key and every public key from `directory`; errors name the file.
    public static func load(directory: String, node: String, nodes: [String]) throws -> KMEKeys {
        var publicKeys: [String: [UInt8]] = [:]
        for n in nodes {
            let path = publicPath(directory, n)
            guard let data = FileManager.default.contents(atPath: path), data.count == KEMExchange.publicKeyBytes else {
                throw KEMExchange.Refusal("\(path): not an ML-KEM-768 public key (missing, or not \(KEMExchange.publicKeyBytes) bytes)")
            }
            publicKeys[n] = Array(data)
        }
        let path = seedPath(directory, node)
        guard let seed = FileManager.default.contents(atPath: path), seed.count == 64 else {
            throw KEMExchange.Refusal("\(path): not an ML-KEM-768 seed (missing, or not 64 bytes)")
        }
        let own: MLKEM768.PrivateKey
        do {
            own = try MLKEM768.PrivateKey(seedRepresentation: seed, publicKey: MLKEM768.PublicKey(rawRepresentation: publicKeys[node]!))
        } catch {
            throw KEMExchange.Refusal("\(path): does not match \(publicPath(directory, node))")
        }
        return KMEKeys(node: node, privateKey: own, publicKeys: publicKeys)
    }
}
