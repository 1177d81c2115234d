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
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
