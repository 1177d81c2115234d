/// Why a protocol message was refused. The round it belongs to is discarded; the link goes on.
public struct ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// A frame or block this end does not know (never sent, already finished, or dropped).
        case unknownRound
        /// An index outside the frame, or not in increasing order.
        case outOfRange
        /// Lists whose lengths disagree with each other or with what this end holds.
        case lengthMismatch
        /// Values that cannot occur (a basis other than 0/1, counts that contradict).
        case invalidValue
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
