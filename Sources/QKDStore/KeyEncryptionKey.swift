import Crypto
import Foundation

/// The node's key-encryption key: 32 random bytes in a file of mode 0600 beside the store.
/// Threat model in docs/security.md: it protects keys at rest against someone who obtains the
/// database file alone (a backup, a copied disk image), not against root on the running host.
enum KeyEncryptionKey {
    static func loadOrCreate(path: String, create: Bool) throws(StoreError) -> SymmetricKey {
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            guard create else {
                throw StoreError(.wrongKey, "\(path): the key-encryption key of an existing store is missing")
            }
            let key = SymmetricKey(size: .bits256)
            let bytes = key.withUnsafeBytes { Data($0) }
            guard fm.createFile(atPath: path, contents: bytes, attributes: [.posixPermissions: 0o600]) else {
                throw StoreError(.io, "\(path): cannot write the key-encryption key")
            }
            return key
        }
        let attributes = try? fm.attributesOfItem(atPath: path)
        if let mode = (attributes?[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
            throw StoreError(.wrongKey, "\(path): key-encryption key has mode \(String(mode, radix: 8)); it must be 0600")
        }
        guard let data = fm.contents(atPath: path), data.count == 32 else {
            throw StoreError(.wrongKey, "\(path): key-encryption key must be exactly 32 bytes")
        }
        return SymmetricKey(data: data)
    }
}
