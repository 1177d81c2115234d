import Foundation
import GRDB
import QKDCore
import QKDKeyPool

/// Application keys on disk, beside the pools: a relayed key is stored here before the node
/// confirms the relay, and removed in the transaction that hands it to its slave SAE, so a key
/// is delivered once even across crashes. Sealed like pool keys (AES-256-GCM under the KEK),
/// with "sae2/", the key ID, its master and slave SAE IDs and its path as associated data: a
/// row edited to give a key to another SAE, or to show another path, fails authentication.
///
/// Two shelves, one table each: keys waiting for their slave SAE (`waiting`), and a master KME's
/// key stock (`stock`, topology `key_stocks`), the same keys' other end, handed to the master SAE
/// by `enc_keys`. A row moved from one table to the other fails authentication too.
public enum ApplicationKeyShelf: Sendable, CaseIterable {
    case waiting
    case stock

    var table: String { self == .waiting ? "application_keys" : "stock_keys" }
    var label: String { self == .waiting ? "sae2/" : "stock1/" }
}

extension KeyStore {
    /// Created when missing at every opening (older stores gain them).
    static let applicationKeysTables = ApplicationKeyShelf.allCases.map { shelf in
        """
        CREATE TABLE IF NOT EXISTS \(shelf.table) (id BLOB PRIMARY KEY, master TEXT NOT NULL, slave TEXT NOT NULL,
                                                     path TEXT NOT NULL, sealed BLOB NOT NULL)
        """
    }

    /// Each table's `kind` column (a store from before hybrid keys gains it, its rows `qkd`).
    static let kindColumns = ApplicationKeyShelf.allCases.map { "ALTER TABLE \($0.table) ADD COLUMN kind TEXT NOT NULL DEFAULT 'qkd'" }

    /// The associated data of an application key's sealed bits: its shelf and every field of
    /// its row, each length-prefixed (so no two rows' fields concatenate alike); the kind when
    /// it is not `qkd` (rows from before kinds read as they were sealed).
    static func applicationAAD(_ id: KeyID, master: String, slave: String, path: [String], shelf: ApplicationKeyShelf,
                               kind: String = "qkd") -> [UInt8] {
        var aad = Array(shelf.label.utf8) + id.bytes
        for field in [master, slave, path.joined(separator: ">")] + (kind == "qkd" ? [] : ["kind=" + kind]) {
            let bytes = Array(field.utf8)
            aad += withUnsafeBytes(of: UInt32(bytes.count).bigEndian, Array.init) + bytes
        }
        return aad
    }

    /// Stores keys in one durable transaction. A key ID already stored is an error (an
    /// application key is never overwritten; the caller refuses duplicates before).
    public func saveApplicationKeys(_ keys: [ApplicationKey], shelf: ApplicationKeyShelf = .waiting) throws(StoreError) {
        guard !keys.isEmpty else { return }
        do {
            try db.write { db in
                let insert = try db.cachedStatement(sql: "INSERT INTO \(shelf.table) (id, master, slave, path, sealed, kind) VALUES (?, ?, ?, ?, ?, ?)")
                for k in keys {
                    let sealed = try KeyStore.seal(KeyStore.encodeBits(k.bits), key: kek, aad: KeyStore.applicationAAD(k.id, master: k.master, slave: k.slave, path: k.path, shelf: shelf, kind: k.kind))
                    try insert.execute(arguments: [Data(k.id.bytes), k.master, k.slave, k.path.joined(separator: ">"), Data(sealed), k.kind])
                }
            }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Removes keys in one durable transaction.
    public func removeApplicationKeys(_ ids: [KeyID], shelf: ApplicationKeyShelf = .waiting) throws(StoreError) {
        guard !ids.isEmpty else { return }
        do {
            try db.write { db in
                let delete = try db.cachedStatement(sql: "DELETE FROM \(shelf.table) WHERE id = ?")
                for id in ids { try delete.execute(arguments: [Data(id.bytes)]) }
            }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Every stored application key, opened and checked; throws (naming the file) on a damaged row.
    public func loadApplicationKeys(shelf: ApplicationKeyShelf = .waiting) throws(StoreError) -> [ApplicationKey] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT id, master, slave, path, sealed, kind FROM \(shelf.table) ORDER BY rowid").map { row in
                    let idData: Data = row[0], sealed: Data = row[4]
                    guard let id = idData.withUnsafeBytes({ KeyID(bytes: $0) }) else {
                        throw StoreError(.corrupt, "\(path): an application key ID is damaged")
                    }
                    let master: String = row[1], slave: String = row[2], text: String = row[3], kind: String = row[5]
                    let hops = text.split(separator: ">").map(String.init)
                    let aad = KeyStore.applicationAAD(id, master: master, slave: slave, path: hops, shelf: shelf, kind: kind)
                    guard let bits = try? sealed.withUnsafeBytes({ try KeyStore.openBits($0, key: kek, aad: aad) }) else {
                        throw StoreError(.corrupt, "\(path): \(shelf == .stock ? "stocked" : "application") key \(id) fails authentication (damaged, moved, or its SAEs or path edited)")
                    }
                    return ApplicationKey(id: id, master: master, slave: slave, bits: bits, path: hops, kind: kind)
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path)
        }
    }
}
