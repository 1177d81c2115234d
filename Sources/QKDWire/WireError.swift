/// Why a frame or payload was rejected. The `code` is what counters and tests key on; the
/// message names the offending field and never contains key material.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        case truncated
        case badMagic
        case unsupportedVersion
        case unknownKind
        case lengthMismatch
        case oversized
        case malformedPayload
        case unexpectedSender
        case unknownLink
        /// A connection whose CURVE key is not admitted (refused in the handshake).
        case unauthenticated
        /// A frame whose sequence number was seen before on its link or is older than the window.
        case replayed
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
