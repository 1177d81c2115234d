import Foundation
import GRDB
import QKDCore
import QKDKeyPool

/// Application keys on disk, beside the pools: a relayed key is stored here before the node
/// confirms the relay, and removed in the transaction that hands it to its slave SAE, so a key
/// is delivered once even across crashes. Sealed like pool keys (AES-256-GCM under the KEK),
/// with "sae2/", the key ID, its master and slave SAE IDs and its path as associated data: a
/// row edited to give a key to another SAE, or to show another path, fails authentication.
extension KeyStore {
    /// Created when missing at every opening (older stores gain it).
    static let applicationKeysTable = """
        CREATE TABLE IF NOT EXISTS application_keys (id BLOB PRIMARY KEY, master TEXT NOT NULL, slave TEXT NOT NULL,
                                                     path TEXT NOT NULL, sealed BLOB NOT NULL)
        """

    /// The associated data of an application key's sealed bits: every field of its row, each
    /// length-prefixed (so no two rows' fields concatenate alike).
    static func applicationAAD(_ id: KeyID, master: String, slave: String, path: [String]) -> [UInt8] {
        var aad = Array("sae2/".utf8) + id.bytes
        for field in [master, slave, path.joined(separator: ">")] {
            let bytes = Array(field.utf8)
            aad += withUnsafeBytes(of: UInt32(bytes.count).bigEndian, Array.init) + bytes
        }
        return aad
    }

    /// Stores keys in one durable transaction. A key ID already stored is an error (an
    /// application key is never overwritten; the caller refuses duplicates before).
    public func saveApplicationKeys(_ keys: [ApplicationKey]) throws(StoreError) {
        guard !keys.isEmpty else { return }
        do {
            try db.write { db in
                let insert = try db.cachedStatement(sql: "INSERT INTO application_keys VALUES (?, ?, ?, ?, ?)")
                for k in keys {
                    let sealed = try KeyStore.seal(KeyStore.encodeBits(k.bits), key: kek, aad: KeyStore.applicationAAD(k.id, master: k.master, slave: k.slave, path: k.path))
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
                    let master: String = row[1], slave: String = row[2], text: String = row[3]
                    let hops = text.split(separator: ">").map(String.init)
                    let aad = KeyStore.applicationAAD(id, master: master, slave: slave, path: hops)
                    guard let bits = try? sealed.withUnsafeBytes({ try KeyStore.openBits($0, key: kek, aad: aad) }) else {
                        throw StoreError(.corrupt, "\(path): application key \(id) fails authentication (damaged, moved, or its SAEs or path edited)")
                    }
                    return ApplicationKey(id: id, master: master, slave: slave, bits: bits, path: hops)
                }
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path)
        }
    }
}
