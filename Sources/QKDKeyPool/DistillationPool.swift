import QKDCore

/// What a link's key distillation does to the link's pool, one complete operation at a time
/// (each leaves the pool consistent and, at a node, durable before it returns).
///
/// The distiller calls these between its computations (Cascade, hashing, privacy
/// amplification) instead of holding the pool through a whole step: a node's shell locks its
/// pools for each call only, so its event loop (heartbeats, relays, queries), which needs the
/// same lock, never waits behind a computation. `KeyPool` itself conforms (tests, in-process
/// pairs); a node reaches its pools through `LinkPoolAccess` (`LinkPoolOperations` in QKDLink).
public protocol DistillationPool {
    /// See `KeyPool.takeOldestForAuthentication()`.
    mutating func takeOldestForAuthentication() -> (id: KeyID, bits: BitVector)?
    /// See `KeyPool.takeForAuthentication(_:)`.
    mutating func takeForAuthentication(_ id: KeyID) -> BitVector?
    /// See `KeyPool.confirm(_:)`.
    mutating func confirm(_ ids: [KeyID])
    /// See `KeyPool.deposit(_:pending:)`.
    @discardableResult
    mutating func deposit(_ keys: [(id: KeyID, bits: BitVector)], pending: Bool) throws(KeyPool.Failure) -> Int
    /// See `KeyPool.discardPending(_:)`.
    @discardableResult
    mutating func discardPending(_ ids: [KeyID]) -> Int
}

extension KeyPool: DistillationPool {}
