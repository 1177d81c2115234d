import QKDCore
import QKDPostProcessing
import Synchronization

/// The node's key pools, one per link, in memory: filled by the quantum worker, read by the
/// event loop. (Persistence, reservation and synchronisation between the ends come with the
/// key-pool layer.) Key bits never leave this type except through `digests`, a keyed universal
/// hash that only test hooks expose.
public final class LinkKeyStore: Sendable {
    public struct Counters: Sendable, Equatable {
        public var storedKeys = 0
        public var storedBits = 0
        public var generatedBitsTotal: UInt64 = 0
        public var consumedBitsTotal: UInt64 = 0
        public var droppedKeys: UInt64 = 0
    }

    struct Pool {
        var keys: [DistilledKey] = []
        var counters = Counters()
    }

    /// Keys kept per link; newer keys beyond it are dropped and counted.
    public let maxKeysPerLink: Int
    private let pools = Mutex<[String: Pool]>([:])

    public init(maxKeysPerLink: Int = 40_000) { self.maxKeysPerLink = maxKeysPerLink }

    public func deposit(_ keys: [DistilledKey], link: String) {
        pools.withLock { all in
            var pool = all[link] ?? Pool()
            for key in keys {
                pool.counters.generatedBitsTotal += UInt64(key.bits.count)
                if pool.keys.count < maxKeysPerLink {
                    pool.keys.append(key)
                    pool.counters.storedBits += key.bits.count
                } else {
                    pool.counters.droppedKeys += 1
                }
            }
            pool.counters.storedKeys = pool.keys.count
            all[link] = pool
        }
    }

    public func counters(_ link: String) -> Counters { pools.withLock { $0[link]?.counters ?? Counters() } }

    /// (key ID, h_salt(key)) for every stored key, in deposit order.
    public func digests(_ link: String, salt: UInt64) -> [(String, UInt64)] {
        pools.withLock { all in
            (all[link]?.keys ?? []).map { ($0.uuidString, PolynomialHash.hash($0.bits.bits, key: salt)) }
        }
    }

    /// Empties a link's pool (a new session starts from nothing, until the key-pool layer
    /// synchronises pools across restarts).
    public func reset(_ link: String) {
        pools.withLock { all in
            var pool = all[link] ?? Pool()
            pool.keys.removeAll()
            pool.counters.storedBits = 0
            pool.counters.storedKeys = 0
            all[link] = pool
        }
    }
}
