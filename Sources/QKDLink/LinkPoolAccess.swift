import QKDCore
import QKDKeyPool

/// How a pure instance reaches a node's key pools, one per link (by link name). The node's
/// shell implements it over its durable pools (`NodePools`: a lock, and the store written
/// before `modify` returns); so does the deterministic network (`NodePools` without a store).
///
/// Contract: `modify` MUST make every change `body` made durable before it returns, and MUST
/// return nil, without calling `body`, for a link this node does not have. Instances call it
/// only for the work that needs the pool, one operation at a time (`LinkPoolOperations`), so
/// the shell's lock is held no longer than that operation.
public protocol LinkPoolAccess {
    mutating func modify<R>(_ link: String, _ body: (inout KeyPool) -> R) -> R?
}

/// One link's pool as a distiller uses it (`DistillationPool`), each operation one `modify`
/// of the node's pools: the lock is taken and the store written per operation, never held
/// across the computations between them.
///
/// For a link the node does not have (which its quantum layer never names), operations do
/// nothing and a deposit is refused as not synchronised.
struct LinkPoolOperations<Access: LinkPoolAccess>: DistillationPool {
    var access: Access
    let link: String

    mutating func takeOldestForAuthentication() -> (id: KeyID, bits: BitVector)? {
        access.modify(link) { $0.takeOldestForAuthentication() } ?? nil
    }

    mutating func takeForAuthentication(_ id: KeyID) -> BitVector? {
        access.modify(link) { $0.takeForAuthentication(id) } ?? nil
    }

    mutating func confirm(_ ids: [KeyID]) {
        access.modify(link) { $0.confirm(ids) }
    }

    @discardableResult
    mutating func deposit(_ keys: [(id: KeyID, bits: BitVector)], pending: Bool) throws(KeyPool.Failure) -> Int {
        let outcome = access.modify(link) { pool in
            Result { () throws(KeyPool.Failure) -> Int in try pool.deposit(keys, pending: pending) }
        }
        guard let outcome else { throw .notSynchronised }
        return try outcome.get()
    }

    @discardableResult
    mutating func discardPending(_ ids: [KeyID]) -> Int {
        access.modify(link) { $0.discardPending(ids) } ?? 0
    }
}
