import Crypto
import Foundation
import GRDB
import QKDCore
import QKDKeyPool

/// A node's key pools on disk: one SQLite database (GRDB, WAL, `synchronous=FULL`, so a
/// committed transaction survives `kill -9` and power loss) under the run directory. Key bits
/// are sealed with AES-256-GCM under the node's key-encryption key (KEK), with the link and key
/// ID as associated data, so a row moved to another key or link fails to open.
///
/// Contract: `apply` writes one pool's journal in one transaction; the caller acts on the
/// changes (sends acknowledgements, hands keys out) only after it returns. A database that
/// cannot be read completely and authentically is refused at `open`/`load` with an error
/// naming the file: a node never serves keys from a damaged store.
///
/// Not thread-safe: one owner (the node's pool lock) serialises every call.
public final class KeyStore {
    public let path: String
    let kek: SymmetricKey
    let db: DatabaseQueue
    /// How many times this store was opened (this opening included): part of every session
    /// nonce, so that no two sessions of a link ever share seeds.
    public private(set) var starts: UInt64 = 0

    static let formatVersion = 1

    /// Opens (or creates) `<directory>/<node>.sqlite` with the KEK `<directory>/<node>.kek`.
    public static func open(directory: String, node: String) throws(StoreError) -> KeyStore {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.io, "cannot create the key store directory \(directory): \(error.localizedDescription)")
        }
        let path = "\(directory)/\(node).sqlite"
        let kekPath = "\(directory)/\(node).kek"
        let exists = fm.fileExists(atPath: path)
        let kek = try KeyEncryptionKey.loadOrCreate(path: kekPath, create: !exists)
        return try KeyStore(path: path, kek: kek, creating: !exists)
    }

    init(path: String, kek: SymmetricKey, creating: Bool) throws(StoreError) {
        self.path = path
        self.kek = kek
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON")
        }
        config.label = "key-store"
        do {
            db = try DatabaseQueue(path: path, configuration: config)
            try db.write { db in
                if creating {
                    try db.execute(sql: """
                        CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
                        CREATE TABLE keys (link TEXT NOT NULL, id BLOB NOT NULL UNIQUE, pending INTEGER NOT NULL, sealed BLOB NOT NULL);
                        CREATE INDEX keys_by_link ON keys(link);
                        CREATE TABLE links (link TEXT PRIMARY KEY, bootstrapped INTEGER NOT NULL);
                        """)
                    try db.execute(sql: "INSERT INTO meta VALUES ('format', ?), ('kek_check', ?), ('starts', 0)",
                                   arguments: [KeyStore.formatVersion, Data(try KeyStore.seal(Array("qkdnet-kek-check".utf8), key: kek, aad: []))])
                }
                guard let format = try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'format'") else {
                    throw StoreError(.corrupt, "\(path): not a QKDNet key store (no format record)")
                }
                guard format == KeyStore.formatVersion else {
                    throw StoreError(.version, "\(path): key store format \(format), this build reads \(KeyStore.formatVersion)")
                }
                let check = try Data.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'kek_check'") ?? Data()
                guard (try? KeyStore.open([UInt8](check), key: kek, aad: [])) == Array("qkdnet-kek-check".utf8) else {
                    throw StoreError(.wrongKey, "\(path): the key-encryption key does not open this store")
                }
                try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE name = 'starts'")
                starts = try UInt64.fetchOne(db, sql: "SELECT value FROM meta WHERE name = 'starts'") ?? 0
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Every key of `link`, in deposit order, opened and checked. Throws (naming the file) if
    /// any row is unreadable or fails authentication.
    public func load(link: String) throws(StoreError) -> [(id: KeyID, bits: BitVector, pending: Bool)] {
        do {
            return try db.read { db in
                var out: [(id: KeyID, bits: BitVector, pending: Bool)] = []
                let rows = try Row.fetchCursor(db, sql: "SELECT id, pending, sealed FROM keys WHERE link = ? ORDER BY rowid", arguments: [link])
                let aadPrefix = Array(link.utf8)
                while let row = try rows.next() {
                    let idBytes: Data = row[0]
                    guard let id = KeyID(bytes: idBytes) else { throw StoreError(.corrupt, "\(path): link \(link): a key ID is not 16 bytes") }
                    let sealed: Data = row[2]
                    let plain: [UInt8]
                    do {
                        plain = try KeyStore.open([UInt8](sealed), key: kek, aad: aadPrefix + id.bytes)
                    } catch {
                        throw StoreError(.corrupt, "\(path): link \(link): key \(id) fails authentication (damaged or moved)")
                    }
                    out.append((id, try KeyStore.decodeBits(plain, path: path), (row[1] as Int) != 0))
                }
                return out
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Whether a link's pool was ever created here (its pre-shared keys installed).
    public func isBootstrapped(link: String) throws(StoreError) -> Bool {
        do {
            return try db.read { try Int.fetchOne($0, sql: "SELECT bootstrapped FROM links WHERE link = ?", arguments: [link]) == 1 }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Writes one pool's journal in one durable transaction (`bootstrap` marks the link as
    /// created in the same transaction).
    public func apply(_ changes: [KeyPool.Change], link: String, bootstrap: Bool = false) throws(StoreError) {
        guard !changes.isEmpty || bootstrap else { return }
        do {
            try db.write { db in
                let insert = try db.cachedStatement(sql: "INSERT INTO keys (link, id, pending, sealed) VALUES (?, ?, ?, ?)")
                let confirm = try db.cachedStatement(sql: "UPDATE keys SET pending = 0 WHERE id = ?")
                let delete = try db.cachedStatement(sql: "DELETE FROM keys WHERE id = ?")
                let aadPrefix = Array(link.utf8)
                for change in changes {
                    switch change {
                    case .added(let id, let bits, let pending):
                        let sealed = try KeyStore.seal(KeyStore.encodeBits(bits), key: kek, aad: aadPrefix + id.bytes)
                        try insert.execute(arguments: [link, Data(id.bytes), pending ? 1 : 0, Data(sealed)])
                    case .confirmed(let id):
                        try confirm.execute(arguments: [Data(id.bytes)])
                    case .removed(let id):
                        try delete.execute(arguments: [Data(id.bytes)])
                    }
                }
                if bootstrap {
                    try db.execute(sql: "INSERT OR REPLACE INTO links VALUES (?, 1)", arguments: [link])
                }
            }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Closes the database (a clean shutdown folds the write-ahead log into the file).
    public func close() throws(StoreError) {
        do {
            try db.close()
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Keys stored per link (for inspection and tests).
    public func count(link: String) throws(StoreError) -> Int {
        do {
            return try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM keys WHERE link = ?", arguments: [link]) ?? 0 }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    // MARK: Sealing

    static func seal(_ plain: [UInt8], key: SymmetricKey, aad: [UInt8]) throws -> [UInt8] {
        let box = try AES.GCM.seal(plain, using: key, authenticating: aad)
        return [UInt8](box.combined!)  // 12-byte nonce, ciphertext, 16-byte tag
    }

    static func open(_ sealed: [UInt8], key: SymmetricKey, aad: [UInt8]) throws -> [UInt8] {
        [UInt8](try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key, authenticating: aad))
    }

    /// 4-byte bit count (little-endian), then the packed words (little-endian).
    static func encodeBits(_ bits: BitVector) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4 + bits.words.count * 8)
        withUnsafeBytes(of: UInt32(bits.count).littleEndian) { out += $0 }
        for w in bits.words { withUnsafeBytes(of: w.littleEndian) { out += $0 } }
        return out
    }

    static func decodeBits(_ bytes: [UInt8], path: String) throws(StoreError) -> BitVector {
        guard bytes.count >= 4 else { throw StoreError(.corrupt, "\(path): a sealed key is too short") }
        let count = Int(bytes[0]) | Int(bytes[1]) << 8 | Int(bytes[2]) << 16 | Int(bytes[3]) << 24
        let words = (count + 63) / 64
        guard bytes.count == 4 + words * 8 else { throw StoreError(.corrupt, "\(path): a sealed key's length does not match its bit count") }
        var w = [UInt64](repeating: 0, count: words)
        for i in 0..<words {
            var v: UInt64 = 0
            for j in 0..<8 { v |= UInt64(bytes[4 + i * 8 + j]) << UInt64(8 * j) }
            w[i] = v
        }
        return BitVector(words: w, count: count)
    }
}
