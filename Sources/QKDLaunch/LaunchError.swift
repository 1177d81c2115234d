/// Why a launcher or qkdctl operation failed; the message names the node, file or endpoint.
public struct LaunchError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case invalidTopology
        case spawnFailed
        case notReady
        case noNetwork
        case alreadyRunning
        case io
        case unknownNode
        case control
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
