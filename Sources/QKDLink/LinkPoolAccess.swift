import QKDKeyPool

/// How a pure instance reaches a node's key pools, one per link (by link name). The node's
/// shell implements it over its durable pools (`NodePools`: a lock, and the store written
/// before `modify` returns); tests and the deterministic network use `InMemoryPools`.
///
/// Contract: `modify` MUST make every change `body` made durable before it returns, and MUST
/// return nil, without calling `body`, for a link this node does not have. Instances call it
/// only for the work that needs the pool, so the shell's lock is held no longer than that.
public protocol LinkPoolAccess {
    mutating func modify<R>(_ link: String, _ body: (inout KeyPool) -> R) -> R?
}

/// A node's pools in memory, for unit tests and the in-process network.
public struct InMemoryPools: LinkPoolAccess, Sendable {
    public var pools: [String: KeyPool]

    public init(_ pools: [String: KeyPool] = [:]) { self.pools = pools }

    public mutating func modify<R>(_ link: String, _ body: (inout KeyPool) -> R) -> R? {
        guard pools[link] != nil else { return nil }
        return body(&pools[link]!)
    }
}
