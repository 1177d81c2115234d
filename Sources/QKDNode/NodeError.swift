/// A failure of the node shell, with what it was doing. Exit codes are chosen at the edge
/// (qkd-node's main).
public struct NodeError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case io
        case transport
        case configuration
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
