import Foundation
import QKDKeyPool

/// A link's bootstrap secret on disk (`LinkBootstrap.encoded()`): one file per link end, mode
/// 0600, written by `qkdctl up` for a secret run and read by the node at every start (the
/// transcript-hash key lives there; the pre-shared keys go into the store once). Errors name
/// the file, never a key bit.
public enum BootstrapFile {
    /// Writes `bootstrap` to `path` (mode 0600, through a temporary file and a rename, so a
    /// reader never sees half a file).
    public static func write(_ bootstrap: LinkBootstrap, path: String) throws(StoreError) {
        let fm = FileManager.default
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = path + ".tmp"
        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try? fm.removeItem(atPath: temporary)
            guard fm.createFile(atPath: temporary, contents: Data(bootstrap.encoded()), attributes: [.posixPermissions: 0o600]) else {
                throw StoreError(.io, "\(path): cannot write the link's bootstrap secret")
            }
            if fm.fileExists(atPath: path) { try fm.removeItem(atPath: path) }
            try fm.moveItem(atPath: temporary, toPath: path)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.io, "\(path): cannot write the link's bootstrap secret: \(error.localizedDescription)")
        }
    }

    /// Reads the bootstrap at `path`: it must exist, be mode 0600 and decode.
    public static func read(path: String) throws(StoreError) -> LinkBootstrap {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path) else {
            throw StoreError(.wrongKey, "\(path): the link's bootstrap secret is missing (a secret run's links are bootstrapped by 'qkdctl up')")
        }
        let attributes = try? fm.attributesOfItem(atPath: path)
        if let mode = (attributes?[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
            throw StoreError(.wrongKey, "\(path): bootstrap secret has mode \(String(mode, radix: 8)); it must be 0600")
        }
        guard let data = fm.contents(atPath: path) else { throw StoreError(.io, "\(path): cannot read the link's bootstrap secret") }
        do {
            return try LinkBootstrap.decode([UInt8](data))
        } catch {
            throw StoreError(.corrupt, "\(path): \(error)")
        }
    }
}
