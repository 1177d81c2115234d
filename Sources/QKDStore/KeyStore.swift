import CSQLite
import Crypto
import Foundation
import GRDB
import QKDCore
import QKDKeyPool

/// A node's key pools on disk: one SQLite database (GRDB, WAL) under the run directory. A
/// committed transaction survives `kill -9` always, and power loss with `Durability.power`. Key bits
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
    /// Link row IDs already in the database (the links table only grows).
    private var linkIDs: [String: Int64] = [:]

    static let formatVersion = 1

    /// What a committed transaction survives.
    public enum Durability: String, Sendable, CaseIterable {
        /// The process being killed (`kill -9`, a crash): SQLite `synchronous=NORMAL` in WAL
        /// mode, no fsync per commit. A power loss may roll back the last commits.
        case process
        /// Power loss too: `synchronous=FULL`, an fsync per commit.
        case power
    }

    /// Opens (or creates) `<directory>/<node>.sqlite` with the KEK `<directory>/<node>.kek`.
    public static func open(directory: String, node: String, durability: Durability = .power) throws(StoreError) -> KeyStore {
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
        return try KeyStore(path: path, kek: kek, creating: !exists, durability: durability)
    }

    init(path: String, kek: SymmetricKey, creating: Bool, durability: Durability) throws(StoreError) {
        self.path = path
        self.kek = kek
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode=WAL; PRAGMA synchronous=\(durability == .power ? "FULL" : "NORMAL"); PRAGMA secure_delete=ON")
        }
        config.label = "key-store"
        do {
            db = try DatabaseQueue(path: path, configuration: config)
            try db.write { db in
                if creating {
                    try db.execute(sql: """
                        CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
                        CREATE TABLE links (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, bootstrapped INTEGER NOT NULL DEFAULT 0);
                        CREATE TABLE keys (link INTEGER NOT NULL REFERENCES links(id), id BLOB NOT NULL UNIQUE,
                                           pending INTEGER NOT NULL, sealed BLOB NOT NULL);
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
                for table in KeyStore.applicationKeysTables { try db.execute(sql: table) }
                for (shelf, alter) in zip(ApplicationKeyShelf.allCases, KeyStore.kindColumns)
                where try !Row.fetchAll(db, sql: "PRAGMA table_info(\(shelf.table))").contains(where: { ($0["name"] as String?) == "kind" }) {
                    try db.execute(sql: alter)
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

    /// Every key of `link`, in deposit order, opened and checked (see `loadAll`).
    public func load(link: String) throws(StoreError) -> [(id: KeyID, bits: BitVector, pending: Bool)] {
        try loadAll()[link] ?? []
    }

    /// Every key of every link, in deposit order, opened and checked. The table is read in
    /// rowid ranges, one per core, each by its own read-only connection that opens its keys as
    /// it goes. Throws (naming the file) if any row is unreadable or fails authentication.
    public func loadAll() throws(StoreError) -> [String: [(id: KeyID, bits: BitVector, pending: Bool)]] {
        var names: [Int64: String] = [:]
        var bounds: (Int64, Int64)?
        do {
            try db.read { db in
                for row in try Row.fetchAll(db, sql: "SELECT id, name FROM links") { names[row[0]] = row[1] }
                if let row = try Row.fetchOne(db, sql: "SELECT MIN(rowid), MAX(rowid) FROM keys"),
                   let lo = row[0] as Int64?, let hi = row[1] as Int64? {
                    bounds = (lo, hi)
                }
            }
        } catch {
            throw StoreError(error, path: path)
        }
        guard let (lo, hi) = bounds else { return [:] }
        let links = Dictionary(uniqueKeysWithValues: names.map { ($0.key, Array($0.value.utf8)) })
        let chunks = max(1, min(ProcessInfo.processInfo.activeProcessorCount, Int((hi - lo) / 8192) + 1))
        let span = (hi - lo) / Int64(chunks) + 1
        var parts = [Result<[(link: Int64, id: KeyID, bits: BitVector, pending: Bool)], StoreError>?](repeating: nil, count: chunks)
        let kek = self.kek, path = self.path
        parts.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let out = buffer
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                // Each slot is written by exactly one iteration.
                out[c] = KeyStore.scan(path: path, kek: kek, links: links, from: lo + Int64(c) * span, to: lo + Int64(c + 1) * span - 1)
            }
        }
        var byLink: [Int64: [(id: KeyID, bits: BitVector, pending: Bool)]] = [:]
        for part in parts {
            for row in try part!.get() { byLink[row.link, default: []].append((row.id, row.bits, row.pending)) }
        }
        return Dictionary(uniqueKeysWithValues: byLink.map { (names[$0.key]!, $0.value) })
    }

    /// Reads and opens the keys with rowid in `from...to`, in order, on a connection of its own.
    static func scan(path: String, kek: SymmetricKey, links: [Int64: [UInt8]], from: Int64, to: Int64)
        -> Result<[(link: Int64, id: KeyID, bits: BitVector, pending: Bool)], StoreError>
    {
        var out: [(link: Int64, id: KeyID, bits: BitVector, pending: Bool)] = []
        do {
            var config = Configuration()
            config.readonly = true
            let reader = try DatabaseQueue(path: path, configuration: config)
            defer { try? reader.close() }
            try reader.read { db in
                // The C API directly: GRDB's row decoding costs more than the rest of the load.
                let statement = try db.makeStatement(sql: "SELECT link, id, pending, sealed FROM keys WHERE rowid BETWEEN ? AND ? ORDER BY rowid")
                try statement.setArguments([from, to])
                let raw = statement.sqliteStatement
                while true {
                    let rc = sqlite3_step(raw)
                    if rc == SQLITE_DONE { break }
                    guard rc == SQLITE_ROW else {
                        throw StoreError(.corrupt, "\(path): \(String(cString: sqlite3_errmsg(sqlite3_db_handle(raw)))) (SQLite \(rc))")
                    }
                    let link = sqlite3_column_int64(raw, 0)
                    guard let aad = links[link] else { throw StoreError(.corrupt, "\(path): a key belongs to unknown link #\(link)") }
                    guard sqlite3_column_bytes(raw, 1) == 16, let idBytes = sqlite3_column_blob(raw, 1),
                          let id = KeyID(bytes: UnsafeRawBufferPointer(start: idBytes, count: 16)) else {
                        throw StoreError(.corrupt, "\(path): link \(String(decoding: aad, as: UTF8.self)): a key ID is damaged")
                    }
                    let length = Int(sqlite3_column_bytes(raw, 3))
                    guard length > 0, let sealed = sqlite3_column_blob(raw, 3),
                          let bits = try? KeyStore.openBits(UnsafeRawBufferPointer(start: sealed, count: length), key: kek, aad: aad + id.bytes) else {
                        throw StoreError(.corrupt, "\(path): link \(String(decoding: aad, as: UTF8.self)): key \(id) fails authentication (damaged or moved)")
                    }
                    out.append((link, id, bits, sqlite3_column_int64(raw, 2) != 0))
                }
                sqlite3_reset(raw)
            }
        } catch let error as StoreError {
            return .failure(error)
        } catch {
            return .failure(StoreError(error, path: path))
        }
        return .success(out)
    }

    /// Opens one sealed key into its bits.
    static func openBits(_ sealed: UnsafeRawBufferPointer, key: SymmetricKey, aad: [UInt8]) throws -> BitVector {
        let plain = try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key, authenticating: aad)
        return try plain.withUnsafeBytes { raw throws -> BitVector in
            guard raw.count >= 4 else { throw StoreError(.corrupt, "a sealed key is too short") }
            let count = Int(UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)))
            let words = (count + 63) / 64
            guard raw.count == 4 + words * 8 else { throw StoreError(.corrupt, "a sealed key's length does not match its bit count") }
            var w = [UInt64](repeating: 0, count: words)
            for i in 0..<words { w[i] = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 4 + 8 * i, as: UInt64.self)) }
            return BitVector(words: w, count: count)
        }
    }

    /// Whether a link's pool was ever created here (its pre-shared keys installed).
    public func isBootstrapped(link: String) throws(StoreError) -> Bool {
        do {
            return try db.read { try Int.fetchOne($0, sql: "SELECT bootstrapped FROM links WHERE name = ?", arguments: [link]) == 1 }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Writes one pool's journal in one durable transaction (`bootstrap` marks the link as
    /// created in the same transaction).
    public func apply(_ changes: [KeyPool.Change], link: String, bootstrap: Bool = false) throws(StoreError) {
        guard !changes.isEmpty || bootstrap else { return }
        try apply([(link, changes)], bootstrap: bootstrap)
    }

    /// Writes several pools' journals in one durable transaction.
    public func apply(_ journals: [(link: String, changes: [KeyPool.Change])], bootstrap: Bool = false) throws(StoreError) {
        guard bootstrap || journals.contains(where: { !$0.changes.isEmpty }) else { return }
        let known = linkIDs
        var learned: [String: Int64] = [:]
        do {
            try db.write { db in
                let insert = try db.cachedStatement(sql: "INSERT INTO keys (link, id, pending, sealed) VALUES (?, ?, ?, ?)")
                let confirm = try db.cachedStatement(sql: "UPDATE keys SET pending = 0 WHERE id = ?")
                let delete = try db.cachedStatement(sql: "DELETE FROM keys WHERE id = ?")
                for (link, changes) in journals where !changes.isEmpty || bootstrap {
                    let linkID: Int64
                    if let id = known[link] {
                        linkID = id
                    } else {
                        try db.execute(sql: "INSERT OR IGNORE INTO links (name) VALUES (?)", arguments: [link])
                        linkID = try Int64.fetchOne(db, sql: "SELECT id FROM links WHERE name = ?", arguments: [link])!
                        learned[link] = linkID
                    }
                    let aadPrefix = Array(link.utf8)
                    for change in changes {
                        switch change {
                        case .added(let id, let bits, let pending):
                            let sealed = try KeyStore.seal(KeyStore.encodeBits(bits), key: kek, aad: aadPrefix + id.bytes)
                            try insert.execute(arguments: [linkID, Data(id.bytes), pending ? 1 : 0, Data(sealed)])
                        case .confirmed(let id):
                            try confirm.execute(arguments: [Data(id.bytes)])
                        case .removed(let id):
                            try delete.execute(arguments: [Data(id.bytes)])
                        }
                    }
                    if bootstrap {
                        try db.execute(sql: "UPDATE links SET bootstrapped = 1 WHERE id = ?", arguments: [linkID])
                    }
                }
            }
            linkIDs.merge(learned) { $1 }  // only once committed
        } catch let error as StoreError {
            throw error
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
}
