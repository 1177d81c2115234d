import GRDB

/// A key store failure, naming the file at fault. A node that gets one at start-up refuses to
/// start; one during operation stops the node (it cannot promise durability any more).
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The file is not a database, or a page, row or sealed key is damaged or truncated.
        case corrupt
        /// The key-encryption key is missing, malformed, too permissive, or not this store's.
        case wrongKey
        /// The store was written by another format version.
        case version
        /// The file system refused (permissions, disk full, I/O error).
        case io
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// An SQLite error, classified.
    init(_ error: any Error, path: String) {
        if let db = error as? DatabaseError {
            let primary = db.resultCode.primaryResultCode
            let corrupt = primary == .SQLITE_CORRUPT || primary == .SQLITE_NOTADB || primary == .SQLITE_FORMAT
            self.init(corrupt ? .corrupt : .io,
                      "\(path): \(db.message ?? "\(db.resultCode)") (SQLite \(db.resultCode))")
        } else if let e = error as? StoreError {
            self = e
        } else {
            self.init(.io, "\(path): \(error)")
        }
    }

    public var description: String { "key store \(code.rawValue): \(message)" }
}
