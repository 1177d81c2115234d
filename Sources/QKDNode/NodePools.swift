import QKDCore
import QKDKeyPool
import QKDLink
import QKDPostProcessing
import QKDStore
import QKDTopology
import QKDTransport
import Foundation
import Synchronization

/// A node's key pools, one per link, shared by the quantum worker (distillation, pool
/// synchronisation) and the event loop (inspection, audit, key delivery). Every mutation goes
/// through `modify`, which writes the pool's journal to the key store in one durable
/// transaction before it returns: whatever the caller then sends or hands out is on disk.
///
/// Without a store (unit tests) the pools live in memory only.
///
/// `@unchecked Sendable`: `pools` is read and written only while `lock` is held; `store` is
/// immutable and used only under `lock` (it has one writer at a time by construction).
public final class NodePools: LinkPoolAccess, @unchecked Sendable {
    /// What routing reads of a pool: whether it agreed with the peer, and the keys it can give
    /// to relays (available beyond the authentication reserve; 0 until agreed).
    public struct Level: Sendable, Equatable {
        public var synchronised: Bool
        public var spareKeys: Int
    }

    private let lock = NSLock()
    private var pools: [String: KeyPool]
    /// Each pool's level as of its last change, and how many application keys wait: kept under
    /// `levels`' own lock (written while `lock` is held), so the event loop reads them without
    /// waiting behind the quantum worker, which holds `lock` through a whole reconciliation step
    /// and its store write.
    private let levels = Mutex<(pools: [String: Level], applicationKeys: Int, byPair: [SAEPair: Int])>(([:], 0, [:]))

    /// A master and a slave SAE: application keys wait at the slave's KME per pair.
    public struct SAEPair: Hashable, Sendable {
        public var master: String
        public var slave: String

        public init(master: String, slave: String) {
            self.master = master
            self.slave = slave
        }
    }
    /// Keys relayed here for slave SAEs that have not collected them, with when they arrived
    /// (or when the node started, for those it read from the store).
    private var applicationKeys: [KeyID: (key: ApplicationKey, since: Instant)] = [:]
    /// The bits of `applicationKeys` by pair of SAEs (kept as keys come and go).
    private var waitingBitsByPair: [SAEPair: Int] = [:]
    /// The key stocks of the master SAEs attached here (topology `key_stocks`), oldest first,
    /// and their sizes readable without `lock` (for `status`).
    private var stock: [SAEPair: [ApplicationKey]] = [:]
    private let stockCounts = Mutex<[SAEPair: Int]>([:])
    private let store: KeyStore?
    /// How many times the node's store was opened (1 without a store): part of session nonces.
    public let starts: UInt64
    public let storePath: String?
    /// How long reading and opening the stored keys took at start-up.
    public private(set) var readDuration: Duration = .zero
    /// Called when the store cannot write, with the lock held: the node must stop there and
    /// then (it can no longer promise that a key handed out is durable at both ends); it must
    /// not return into the caller, which would announce the change.
    private let onStoreFailure: @Sendable (StoreError) -> Void

    /// Each link's bootstrap secret (`LinkBootstrap`): its transcript-hash key is read by the
    /// quantum layer at every session.
    public let bootstraps: [String: LinkBootstrap]

    /// Each link's transcript-hash key, from its bootstrap.
    public var authenticationKeys: [String: UInt128] { bootstraps.mapValues(\.authenticationKey) }

    /// The bootstrap secrets of `node`'s links: derived from the seed in a reproducible run,
    /// read from the files `qkdctl up` installed (`layout.bootstrapPath`) in a secret one.
    public static func bootstraps(node: NodeID, topology: Topology, layout: RunLayout?) throws(StoreError) -> [String: LinkBootstrap] {
        var out: [String: LinkBootstrap] = [:]
        for link in topology.links(of: node) { out[link.name] = try bootstrap(node: node, link: link, topology: topology, layout: layout) }
        return out
    }

    /// One link's bootstrap: its file in the run directory (`qkdctl up` writes them for a
    /// secret run, `qkdctl node reset` for the links it provisions afresh in any run), else,
    /// for a reproducible run, derived from the seed.
    public static func bootstrap(node: NodeID, link: TopologyLink, topology: Topology, layout: RunLayout?) throws(StoreError) -> LinkBootstrap {
        let configuration = link.distillation
        if let path = layout?.bootstrapPath(node, link: link.name), topology.secrecy == .secret || FileManager.default.fileExists(atPath: path) {
            let b = try BootstrapFile.read(path: path)
            guard b.keys.allSatisfy({ $0.bits.count == configuration.keyBits }) else {
                throw StoreError(.corrupt, "\(path): pre-shared keys are not \(configuration.keyBits) bits")
            }
            return b
        }
        guard topology.secrecy == .reproducible else {
            throw StoreError(.wrongKey, "link \(link.name): a secret run needs the bootstrap secrets 'qkdctl up' installs")
        }
        return .derived(linkSeeds: SeedTree(root: topology.seed).child("link/\(link.name)"), keyBits: configuration.keyBits,
                        count: configuration.preSharedKeys)
    }

    /// Loads every link's pool from `store` (a link seen for the first time starts with the
    /// pre-shared keys of its bootstrap, written in the same transaction that marks it created).
    /// `bootstraps` nil: derived from the seed (a reproducible topology only).
    public init(node: NodeID, topology: Topology, store: KeyStore?, bootstraps given: [String: LinkBootstrap]? = nil,
                onStoreFailure: @escaping @Sendable (StoreError) -> Void = { fatalError("\($0)") }) throws(StoreError) {
        let bootstraps: [String: LinkBootstrap]
        if let given { bootstraps = given } else { bootstraps = try NodePools.bootstraps(node: node, topology: topology, layout: nil) }
        var pools: [String: KeyPool] = [:]
        let t0 = ContinuousClock.now
        let stored = try store?.loadAll() ?? [:]
        let waitingKeys = try store?.loadApplicationKeys() ?? []
        let stocked = try store?.loadApplicationKeys(shelf: .stock) ?? []
        readDuration = ContinuousClock.now - t0
        for link in topology.links(of: node) {
            let configuration = link.poolConfiguration
            if let store, try store.isBootstrapped(link: link.name) {
                pools[link.name] = KeyPool(configuration: configuration, restoring: stored[link.name] ?? [])
            } else {
                var pool = KeyPool(configuration: configuration)
                guard let bootstrap = bootstraps[link.name] else { throw StoreError(.wrongKey, "link \(link.name): no bootstrap secret") }
                do {
                    try pool.deposit(bootstrap.keys, pending: false)
                } catch {
                    throw StoreError(.io, "link \(link.name): pre-shared keys refused: \(error)")
                }
                try store?.apply(pool.drainJournal(), link: link.name, bootstrap: true)
                _ = pool.drainJournal()
                pools[link.name] = pool
            }
        }
        self.bootstraps = bootstraps
        starts = store?.starts ?? 1
        storePath = store?.path
        self.onStoreFailure = onStoreFailure
        self.pools = pools
        self.store = store
        for k in waitingKeys { hold(k, since: Instant(nanoseconds: 0)) }
        for k in stocked { stock[SAEPair(master: k.master, slave: k.slave), default: []].append(k) }
        noteStock()
        for (link, pool) in pools { noteLevel(link, pool) }
        noteApplicationKeys()
    }

    /// A link pool's level as of its last change (nil for an unknown link), without `lock`.
    public func level(_ link: String) -> Level? { levels.withLock { $0.pools[link] } }

    private func noteLevel(_ link: String, _ pool: KeyPool) {
        let level = Level(synchronised: pool.isSynchronised,
                          spareKeys: pool.isSynchronised ? max(0, pool.availableKeys - pool.configuration.authenticationReserve) : 0)
        levels.withLock { $0.pools[link] = level }
    }

    /// Called with `lock` held, after application keys changed.
    private func noteApplicationKeys() {
        let count = applicationKeys.count, byPair = waitingBitsByPair
        levels.withLock { ($0.applicationKeys, $0.byPair) = (count, byPair) }
    }

    /// Holds an application key (under `lock`), keeping the bits waiting per pair.
    private func hold(_ key: ApplicationKey, since: Instant) {
        applicationKeys[key.id] = (key, since)
        waitingBitsByPair[SAEPair(master: key.master, slave: key.slave), default: 0] += key.bits.count
    }

    /// Forgets an application key (under `lock`).
    private func release(_ id: KeyID) {
        guard let key = applicationKeys.removeValue(forKey: id)?.key else { return }
        let pair = SAEPair(master: key.master, slave: key.slave)
        waitingBitsByPair[pair, default: 0] -= key.bits.count
        if waitingBitsByPair[pair] == 0 { waitingBitsByPair[pair] = nil }
    }

    /// Key bits waiting here for `pair`'s slave to collect them, without `lock`.
    public func waitingBits(_ pair: SAEPair) -> Int { levels.withLock { $0.byPair[pair] ?? 0 } }

    /// Why `adding` more key bits for `pair`, which has `waiting`, would exceed `limit`, or nil.
    public static func storageRefusal(waiting: Int, adding: Int, limit: Int, pair: SAEPair) -> String? {
        waiting + adding <= limit ? nil
            : "SAE '\(pair.slave)' has \(waiting) key bits from '\(pair.master)' waiting for collection and \(adding) more would exceed kme.max_waiting_bits_per_pair \(limit): collect them with dec_keys first"
    }

    /// Runs `body` on a link's pool, then makes its changes durable. Nil for an unknown link.
    @discardableResult
    public func modify<R>(_ link: String, _ body: (inout KeyPool) -> R) -> R? {
        modifying([link]) { body(&$0[0]) }
    }

    /// Runs `body` on two links' pools, then makes both pools' changes durable in one
    /// transaction (a relay hop: keys of the incoming and the outgoing link). Nil for an
    /// unknown link.
    @discardableResult
    public func modify<R>(_ first: String, _ second: String, _ body: (inout KeyPool, inout KeyPool) -> R) -> R? {
        guard first != second else { return nil }
        return modifying([first, second]) { taken in
            var b = taken.removeLast(), a = taken.removeLast()  // moved out: still uniquely referenced
            defer { taken = [a, b] }
            return body(&a, &b)
        }
    }

    /// Takes the pools of `links` out (uniquely referenced while they change), runs `body`,
    /// puts them back and writes their journals in one transaction, all under the lock.
    private func modifying<R>(_ links: [String], _ body: (inout [KeyPool]) -> R) -> R? {
        lock.lock()
        guard links.allSatisfy({ pools[$0] != nil }) else {
            lock.unlock()
            return nil
        }
        var taken = links.map { pools.removeValue(forKey: $0)! }
        let result = body(&taken)
        var journals: [(link: String, changes: [KeyPool.Change])] = []
        for (link, var pool) in zip(links, taken) {
            journals.append((link, pool.drainJournal()))
            noteLevel(link, pool)
            pools[link] = pool
        }
        var failure: StoreError?
        do throws(StoreError) {
            try store?.apply(journals)
        } catch {
            failure = error
        }
        // Still under the lock: no other thread sees a change the store does not hold.
        if let failure { onStoreFailure(failure) }
        lock.unlock()
        return result
    }

    /// Keys held over all links.
    public var heldKeys: Int {
        lock.lock()
        defer { lock.unlock() }
        return pools.values.map(\.heldKeys).reduce(0, +)
    }

    /// Closes the store at a clean shutdown (after the worker stopped).
    public func close() throws(StoreError) {
        lock.lock()
        defer { lock.unlock() }
        try store?.close()
    }

    // MARK: Application keys

    /// Why `collectApplicationKeys` refused.
    public enum CollectRefusal: Error, Equatable {
        /// A key ID is not held here for this pair: unknown, expired, already collected,
        /// requested by another master SAE or held for another slave SAE. One answer for all of
        /// them, so that an SAE cannot learn which key IDs exist for other pairs.
        case notFound([KeyID])
    }

    /// Stores keys for their slave SAEs; durable when this returns. A key whose ID is already
    /// held (or appears twice) is refused, never stored over the waiting one: returns the IDs
    /// refused.
    @discardableResult
    public func depositApplicationKeys(_ keys: [ApplicationKey], at now: Instant) -> [KeyID] {
        var refused: [KeyID] = []
        withStore { store throws(StoreError) in
            var fresh: [ApplicationKey] = []
            var ids: Set<KeyID> = []
            for k in keys {
                if applicationKeys[k.id] != nil || !ids.insert(k.id).inserted { refused.append(k.id) } else { fresh.append(k) }
            }
            try store?.saveApplicationKeys(fresh)
            for k in fresh { hold(k, since: now) }
        }
        return refused
    }

    /// Stores keys made here for one pair of SAEs (master and slave at this node), all or
    /// none: none if the pair would then have more than `limit` key bits waiting. Returns the
    /// refusal.
    public func depositLocalKeys(_ keys: [ApplicationKey], pair: SAEPair, limit: Int, at now: Instant) -> String? {
        var refusal: String?
        withStore { store throws(StoreError) in
            let waiting = waitingBitsByPair[pair] ?? 0
            let adding = keys.reduce(0) { $0 + $1.bits.count }
            if let why = NodePools.storageRefusal(waiting: waiting, adding: adding, limit: limit, pair: pair) { return refusal = why }
            guard keys.allSatisfy({ applicationKeys[$0.id] == nil }), Set(keys.map(\.id)).count == keys.count else {
                return refusal = "a key ID is already held here"
            }
            try store?.saveApplicationKeys(keys)
            for k in keys { hold(k, since: now) }
        }
        return refusal
    }

    /// Hands the keys `ids` to `slave` (requested by `master`) and forgets them, durably, all or
    /// nothing: nothing changes if any one is refused.
    public func collectApplicationKeys(_ ids: [KeyID], slave: String, master: String) -> Result<[ApplicationKey], CollectRefusal> {
        var result: Result<[ApplicationKey], CollectRefusal> = .success([])
        withStore { store throws(StoreError) in
            let found = ids.map { applicationKeys[$0]?.key }
            let missing = zip(ids, found).filter { $0.1 == nil || $0.1!.master != master || $0.1!.slave != slave }.map(\.0)
            guard missing.isEmpty else { return result = .failure(.notFound(missing)) }
            guard Set(ids).count == ids.count else { return result = .failure(.notFound(ids)) }
            try store?.removeApplicationKeys(ids)
            for id in ids { release(id) }
            result = .success(found.map { $0! })
        }
        return result
    }

    /// Forgets application keys that waited longer than `ttlNs` (counted from the node's start
    /// for keys read from the store), except those of the pairs `keeping` (stocked pairs: their
    /// master's KME holds the other end until its SAE asks); returns how many.
    @discardableResult
    public func expireApplicationKeys(at now: Instant, ttlNs: UInt64, keeping: Set<SAEPair> = []) -> Int {
        guard levels.withLock({ $0.applicationKeys }) > 0 else { return 0 }
        var expired: [KeyID] = []
        withStore { store throws(StoreError) in
            expired = applicationKeys.filter {
                $0.value.since.nanoseconds != 0 && now.nanoseconds(since: $0.value.since) > ttlNs
                    && !keeping.contains(SAEPair(master: $0.value.key.master, slave: $0.value.key.slave))
            }.map(\.key)
            try store?.removeApplicationKeys(expired)
            for id in expired { release(id) }
            for (id, entry) in applicationKeys where entry.since.nanoseconds == 0 { applicationKeys[id] = (entry.key, now) }
        }
        return expired.count
    }

    // MARK: Key stocks

    /// Called with `lock` held, after a stock changed.
    private func noteStock() {
        let counts = stock.mapValues(\.count)
        stockCounts.withLock { $0 = counts }
    }

    /// Keys in `pair`'s stock, without `lock`.
    public func stocked(_ pair: SAEPair) -> Int { stockCounts.withLock { $0[pair] ?? 0 } }

    /// Adds relayed keys to their pair's stock; durable when this returns. A key ID already
    /// stocked (or twice in `keys`) is refused; returns the IDs refused.
    @discardableResult
    public func depositStock(_ keys: [ApplicationKey]) -> [KeyID] {
        var refused: [KeyID] = []
        withStore { store throws(StoreError) in
            let held = Set(stock.values.joined().map(\.id))
            var ids: Set<KeyID> = []
            let fresh = keys.filter { k in
                let ok = !held.contains(k.id) && ids.insert(k.id).inserted
                if !ok { refused.append(k.id) }
                return ok
            }
            try store?.saveApplicationKeys(fresh, shelf: .stock)
            for k in fresh { stock[SAEPair(master: k.master, slave: k.slave), default: []].append(k) }
            noteStock()
        }
        return refused
    }

    /// Takes the `number` oldest keys of `pair`'s stock, durably removed before they are
    /// returned, or nil (and nothing taken) if it holds fewer.
    public func drawStock(_ pair: SAEPair, number: Int) -> [ApplicationKey]? {
        var drawn: [ApplicationKey]?
        withStore { store throws(StoreError) in
            guard let held = stock[pair], held.count >= number else { return }
            let taken = Array(held.prefix(number))
            try store?.removeApplicationKeys(taken.map(\.id), shelf: .stock)
            stock[pair] = Array(held.dropFirst(number))
            noteStock()
            drawn = taken
        }
        return drawn
    }

    /// The application key `id` if held here, waiting for its slave or in a stock (for `relay
    /// show`).
    public func applicationKey(_ id: KeyID) -> ApplicationKey? {
        lock.lock()
        defer { lock.unlock() }
        return applicationKeys[id]?.key ?? stock.values.lazy.compactMap { $0.first { $0.id == id } }.first
    }

    /// Runs `body` under the lock with the store; a store failure stops the node.
    private func withStore(_ body: (KeyStore?) throws(StoreError) -> Void) {
        lock.lock()
        var failure: StoreError?
        do throws(StoreError) {
            try body(store)
        } catch {
            failure = error
        }
        noteApplicationKeys()
        if let failure { onStoreFailure(failure) }  // under the lock, as in `modifying`
        lock.unlock()
    }

    /// Replaces every key of `link` by `bootstrap`'s pre-shared keys, durably (the peer lost its
    /// store and `qkdctl node reset` provisioned the link afresh: what this end held has no
    /// counterpart any more). The pool then waits for a new agreement. Nil, or why not.
    public func rebootstrap(_ link: String, with bootstrap: LinkBootstrap) -> String? {
        let refusal: String?? = modify(link) { pool -> String? in
            _ = pool.synchronise(peerHolds: [])
            do {
                _ = try pool.deposit(bootstrap.keys, pending: false)
            } catch {
                return "link \(link): the new pre-shared keys are refused: \(error)"
            }
            pool.desynchronise()
            return nil
        }
        guard let refusal else { return "link \(link) does not end here" }
        return refusal
    }

    /// Reads a link's pool.
    public func read<R>(_ link: String, _ body: (KeyPool) -> R) -> R? {
        lock.lock()
        defer { lock.unlock() }
        return pools[link].map(body)
    }
}

extension KeyPool {
    /// (key ID, 64-bit keyed digest, state) of every held key, for the audit: the digest is
    /// HMAC-SHA-256 under `salt`, truncated, so it reveals nothing usable about the key.
    func auditDigests(salt: UInt64) -> [(id: KeyID, digest: UInt64, pending: Bool)] {
        let digester = KeyDigester(salt: salt)
        return heldIDs.compactMap { id in
            guard let bits = bits(of: id), let state = state(of: id) else { return nil }
            return (id, digester.digest(id: id, bits: bits), state == .pending)
        }
    }
}
