/// Where a spliced link's frames go: the interposer's endpoint, its CURVE public key, and the
/// id its frames arrive under (`eve:LINK`).
public struct InterposerEndpoint: Equatable, Sendable {
    public let endpoint: String
    public let key: String
    public let id: NodeID

    public init(endpoint: String, key: String, id: NodeID) {
        self.endpoint = endpoint
        self.key = key
        self.id = id
    }
}
