import Foundation
import GRDB
import QKDCore
import QKDKeyPool

/// Application keys on disk, beside the pools: a relayed key is stored here before the node
/// confirms the relay, and removed in the transaction that hands it to its slave SAE, so a key
/// is delivered once even across crashes. Sealed like pool keys (AES-256-GCM under the KEK),
/// with "sae/" and the key ID as associated data.
extension KeyStore {
    /// Created when missing at every opening (older stores gain it).
    static let applicationKeysTable = """
        CREATE TABLE IF NOT EXISTS application_keys (id BLOB PRIMARY KEY, master TEXT NOT NULL, slave TEXT NOT NULL,
                                                     path TEXT NOT NULL, sealed BLOB NOT NULL)
        """

    static func applicationAAD(_ id: KeyID) -> [UInt8] { Array("sae/".utf8) + id.bytes }

    /// Stores keys in one durable transaction.
    public func saveApplicationKeys(_ keys: [ApplicationKey]) throws(StoreError) {
        guard !keys.isEmpty else { return }
        do {
            try db.write { db in
                let insert = try db.cachedStatement(sql: "INSERT OR REPLACE INTO application_keys VALUES (?, ?, ?, ?, ?)")
                for k in keys {
                    let sealed = try KeyStore.seal(KeyStore.encodeBits(k.bits), key: kek, aad: KeyStore.applicationAAD(k.id))
                    try insert.execute(arguments: [Data(k.id.bytes), k.master, k.slave, k.path.joined(separator: ">"), Data(sealed)])
                }
            }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Removes keys in one durable transaction.
    public func removeApplicationKeys(_ ids: [KeyID]) throws(StoreError) {
        guard !ids.isEmpty else { return }
        do {
            try db.write { db in
                let delete = try db.cachedStatement(sql: "DELETE FROM application_keys WHERE id = ?")
                for id in ids { try delete.execute(arguments: [Data(id.bytes)]) }
            }
        } catch {
            throw StoreError(error, path: path)
        }
    }

    /// Every stored application key, opened and checked; throws (naming the file) on a damaged row.
    public func loadApplicationKeys() throws(StoreError) -> [ApplicationKey] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT id, master, slave, path, sealed FROM application_keys ORDER BY rowid").map { row in
                    let idData: Data = row[0], sealed: Data = row[4]
                    guard let id = idData.withUnsafeBytes({ KeyID(bytes: $0) }) else {
                        throw StoreError(.corrupt, "\(path): an application key ID is damaged")
                    }
                    guard let bits = try? sealed.withUnsafeBytes({ try KeyStore.openBits($0, key: kek, aad: KeyStore.applicationAAD(id)) }) else {
                        throw StoreError(.corrupt, "\(path): application key \(id) fails authentication (damaged or moved)")
                    }
                    let text: String = row[3]
                    return ApplicationKey(id: id, master: row[1], slave: row[2], bits: bits, path: text.split(separator: ">").map(String.init))
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path)
        }
    }
}
