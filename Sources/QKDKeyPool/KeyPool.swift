import QKDCore

/// One link end's key pool as a pure state machine (no I/O, no clock: instants are passed
/// in). Keys are identified by their `KeyID`, the same at both ends of the link.
///
/// States: `pending` (distilled and stored here, not yet known to be stored at the peer) →
/// `available` → `reserved` (for an application or a relay, with a deadline) → consumed (gone).
/// A reservation can be released back to `available` (a voided relay) or expire (never
/// collected: the key is discarded, since the other end may have used it).
///
/// The oldest `authenticationReserve` available keys are the link's own: `reserve` never hands
/// them out; Wegman–Carter authentication takes the oldest one (`takeOldestForAuthentication`,
/// the end that tags) or a named one (`takeForAuthentication(_:)`, the end that verifies).
/// Both ends keep the same order, so applications and authentication never collide.
///
/// Guarantees (checked by model-based tests): a key is handed out at most once; a pending key is
/// never handed out; a key disappears only by consumption, authentication, expiry,
/// synchronisation with the peer (it is not held there) or by being dropped at deposit because
/// the pool is full (each counted). Every change that must survive a crash is recorded in a
/// journal (`drainJournal`) that the shell writes to disk before acting on the change.
public struct KeyPool: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Keys held (pending + available + reserved) at most; deposits beyond are dropped and counted.
        public var maxKeyCount: Int
        /// Oldest available keys kept for the link's own authentication.
        public var authenticationReserve: Int
        /// How long a reservation may wait to be collected.
        public var reservationTTLNs: UInt64

        public init(maxKeyCount: Int = 100_000, authenticationReserve: Int = 64, reservationTTLMs: UInt64 = 30_000) {
            self.maxKeyCount = maxKeyCount
            self.authenticationReserve = authenticationReserve
            reservationTTLNs = reservationTTLMs * 1_000_000
        }
    }

    public enum State: Equatable, Sendable {
        case pending
        case available
        case reserved(owner: String, deadline: Instant)
    }

    /// A change to persist, in order.
    public enum Change: Sendable, Equatable {
        case added(KeyID, BitVector, pending: Bool)
        case confirmed(KeyID)
        case removed(KeyID)
    }

    public struct Counters: Equatable, Sendable {
        public var deposited: UInt64 = 0
        public var dropped: UInt64 = 0
        public var consumed: UInt64 = 0
        public var consumedBits: UInt64 = 0
        public var expired: UInt64 = 0
        public var released: UInt64 = 0
        public var authenticationTaken: UInt64 = 0
        public var authenticationBits: UInt64 = 0
        /// Keys removed by synchronisation because the peer did not hold them.
        public var orphansRemoved: UInt64 = 0
        /// Pending keys discarded because their round was never acknowledged.
        public var pendingDiscarded: UInt64 = 0
        /// Keys discarded because a relay named them and failed.
        public var discarded: UInt64 = 0

        public init() {}
    }

    public enum Failure: Error, Equatable, Sendable {
        /// Not enough keys outside the authentication reserve.
        case insufficient(requested: Int, available: Int)
        /// The key is unknown (never deposited, or already consumed, expired or dropped).
        case unknownKey(KeyID)
        /// The key is reserved for someone else, or not reserved at all.
        case notReservedBy(String, key: KeyID)
        case duplicateKey(KeyID)
        /// The link has not agreed its pool with the peer since it came up.
        case notSynchronised
    }

    struct Entry {
        var bits: BitVector
        var state: State
    }

    public let configuration: Configuration
    private var entries: [KeyID: Entry] = [:]
    /// Keys in the order they became available (confirmation, or release back), oldest first;
    /// `position` holds each available key's current absolute index, so stale entries are skipped.
    private var queue: [KeyID] = []
    private var queueHead = 0
    private var queueBase = 0
    private var position: [KeyID: Int] = [:]
    private var journal: [Change] = []
    public private(set) var counters = Counters()
    public private(set) var availableKeys = 0
    public private(set) var pendingKeys = 0
    public private(set) var availableBits = 0
    /// Whether the pool agrees with the peer's (set by `synchronise`, cleared when the link
    /// goes down): reservations need it.
    public private(set) var isSynchronised = false

    public init(configuration: Configuration = .init()) { self.configuration = configuration }

    /// A pool as it was persisted: `records` in deposit order. Nothing is journaled.
    public init(configuration: Configuration, restoring records: [(id: KeyID, bits: BitVector, pending: Bool)]) {
        self.configuration = configuration
        entries.reserveCapacity(records.count)
        position.reserveCapacity(records.count)
        queue.reserveCapacity(records.count)
        for r in records {
            guard entries.updateValue(Entry(bits: r.bits, state: r.pending ? .pending : .available), forKey: r.id) == nil else { continue }
            if r.pending { pendingKeys += 1 } else { makeAvailable(r.id, bits: r.bits.count) }
        }
    }

    public var heldKeys: Int { entries.count }
    public var reservedKeys: Int { entries.count - availableKeys - pendingKeys }
    public func state(of id: KeyID) -> State? { entries[id]?.state }

    /// Every held key (pending, available or reserved), sorted: what `synchronise` compares.
    public var heldIDs: [KeyID] { entries.keys.sorted() }

    /// Available keys in hand-out order (oldest first).
    public var availableIDs: [KeyID] {
        var out: [KeyID] = []
        for i in queueHead..<queue.count where isCurrent(queue[i], at: i) { out.append(queue[i]) }
        return out
    }

    /// The bits of a held key, for keyed digests (audit) only.
    public func bits(of id: KeyID) -> BitVector? { entries[id]?.bits }

    /// Changes since the last call, oldest first.
    public mutating func drainJournal() -> [Change] {
        defer { journal.removeAll(keepingCapacity: true) }
        return journal
    }

    /// Deposits keys (`pending` until the peer is known to hold them too); returns how many were
    /// dropped because the pool was full.
    @discardableResult
    public mutating func deposit(_ keys: [(id: KeyID, bits: BitVector)], pending: Bool) throws(Failure) -> Int {
        if let dup = keys.first(where: { entries[$0.id] != nil }) { throw .duplicateKey(dup.id) }
        var dropped = 0
        for (id, key) in keys {
            if entries.count >= configuration.maxKeyCount {
                dropped += 1
                continue
            }
            entries[id] = Entry(bits: key, state: pending ? .pending : .available)
            if pending { pendingKeys += 1 } else { makeAvailable(id, bits: key.count) }
            journal.append(.added(id, key, pending: pending))
            counters.deposited += 1
        }
        counters.dropped += UInt64(dropped)
        return dropped
    }

    /// The peer holds these pending keys too: they become available. Unknown or non-pending IDs
    /// are ignored (the key was consumed or synchronised away meanwhile).
    public mutating func confirm(_ ids: [KeyID]) {
        for id in ids where entries[id]?.state == .pending {
            entries[id]!.state = .available
            pendingKeys -= 1
            makeAvailable(id, bits: entries[id]!.bits.count)
            journal.append(.confirmed(id))
        }
    }

    /// Removes pending keys whose round the peer never acknowledged; returns how many.
    @discardableResult
    public mutating func discardPending(_ ids: [KeyID]) -> Int {
        var n = 0
        for id in ids where entries[id]?.state == .pending {
            remove(id)
            n += 1
        }
        counters.pendingDiscarded += UInt64(n)
        return n
    }

    /// Agrees this end's pool with the peer's: keeps the keys both hold (pending ones become
    /// available: both ends have them stored), removes the others. Returns (removed, confirmed).
    @discardableResult
    public mutating func synchronise(peerHolds peer: Set<KeyID>) -> (removed: Int, confirmed: Int) {
        var removed = 0
        var toConfirm: [KeyID] = []
        for (id, entry) in entries {
            if !peer.contains(id) {
                remove(id)
                removed += 1
            } else if entry.state == .pending {
                toConfirm.append(id)
            }
        }
        counters.orphansRemoved += UInt64(removed)
        toConfirm.sort()
        confirm(toConfirm)
        isSynchronised = true
        return (removed, toConfirm.count)
    }

    /// The link went down: no reservations until the next `synchronise`.
    public mutating func desynchronise() { isSynchronised = false }

    /// Reserves `count` available keys for `owner` until `now + TTL`: the oldest ones after the
    /// authentication reserve, provided that many exist.
    public mutating func reserve(count: Int, for owner: String, at now: Instant) throws(Failure) -> [KeyID] {
        guard isSynchronised else { throw .notSynchronised }
        let spare = availableKeys - configuration.authenticationReserve
        guard count > 0, count <= spare else { throw .insufficient(requested: count, available: max(0, spare)) }
        compactQueue()
        var picked: [KeyID] = []
        var skipped = 0
        var i = queueHead
        let deadline = now.advanced(byNanoseconds: configuration.reservationTTLNs)
        while picked.count < count && i < queue.count {
            let id = queue[i]
            i += 1
            guard isCurrent(id, at: i - 1) else { continue }
            if skipped < configuration.authenticationReserve {
                skipped += 1
                continue
            }
            leaveQueue(id)
            entries[id]!.state = .reserved(owner: owner, deadline: deadline)
            picked.append(id)
        }
        return picked
    }

    /// Reserves keys the peer named (the receiving end of a relay hop): each must be available
    /// here. All or nothing. Returns their bits (the caller may use them only after `take`).
    public mutating func reserve(named ids: [KeyID], for owner: String, at now: Instant) throws(Failure) -> [BitVector] {
        guard isSynchronised else { throw .notSynchronised }
        for id in ids where entries[id]?.state != .available { throw .unknownKey(id) }
        guard Set(ids).count == ids.count else { throw .duplicateKey(ids[0]) }
        let deadline = now.advanced(byNanoseconds: configuration.reservationTTLNs)
        return ids.map { id in
            leaveQueue(id)
            entries[id]!.state = .reserved(owner: owner, deadline: deadline)
            return entries[id]!.bits
        }
    }

    /// Consumes `count` keys outside the authentication reserve at once, oldest first (the
    /// sending end of a relay hop, which names them to the peer).
    public mutating func consume(count: Int, at now: Instant) throws(Failure) -> [(id: KeyID, bits: BitVector)] {
        let owner = "\u{0}consume"
        let ids = try reserve(count: count, for: owner, at: now)
        var out: [(id: KeyID, bits: BitVector)] = []
        for id in ids { out.append((id, try take(id, by: owner))) }
        return out
    }

    /// Consumes the keys the peer named (the receiving end of a relay hop): all or nothing. If
    /// one is missing, the named keys held here are discarded anyway (the peer has used them).
    public mutating func consume(named ids: [KeyID], at now: Instant) throws(Failure) -> [BitVector] {
        let owner = "\u{0}consume"
        do {
            let bits = try reserve(named: ids, for: owner, at: now)
            for id in ids { _ = try take(id, by: owner) }
            return bits
        } catch {
            for id in ids where entries[id] != nil && entries[id]!.state != .pending {
                remove(id)
                counters.discarded += 1
            }
            throw error
        }
    }

    /// Hands a reserved key to its owner and consumes it: the bits leave the pool for good.
    public mutating func take(_ id: KeyID, by owner: String) throws(Failure) -> BitVector {
        guard let entry = entries[id] else { throw .unknownKey(id) }
        guard case .reserved(let holder, _) = entry.state, holder == owner else { throw .notReservedBy(owner, key: id) }
        remove(id)
        counters.consumed += 1
        counters.consumedBits += UInt64(entry.bits.count)
        return entry.bits
    }

    /// Returns a reservation to the available keys (a relay voided before using the key).
    public mutating func release(_ id: KeyID, by owner: String) throws(Failure) {
        guard let entry = entries[id] else { throw .unknownKey(id) }
        guard case .reserved(let holder, _) = entry.state, holder == owner else { throw .notReservedBy(owner, key: id) }
        entries[id]!.state = .available
        makeAvailable(id, bits: entry.bits.count)  // back in line, at the end
        counters.released += 1
    }

    /// Discards reservations whose deadline passed; returns their IDs (sorted).
    public mutating func expire(at now: Instant) -> [KeyID] {
        var gone: [KeyID] = []
        for (id, entry) in entries {
            if case .reserved(_, let deadline) = entry.state, deadline <= now { gone.append(id) }
        }
        gone.sort()
        for id in gone { remove(id) }
        counters.expired += UInt64(gone.count)
        return gone
    }

    /// Takes the oldest available key for the link's own authentication.
    public mutating func takeOldestForAuthentication() -> (id: KeyID, bits: BitVector)? {
        compactQueue()
        guard queueHead < queue.count else { return nil }
        let id = queue[queueHead]
        let bits = entries[id]!.bits
        remove(id)
        countAuthentication(bits.count)
        return (id, bits)
    }

    /// Takes a key the peer named for authentication: available, or reserved (the reservation
    /// is revoked: the peer has already consumed the key, so no relay could use it).
    public mutating func takeForAuthentication(_ id: KeyID) -> BitVector? {
        guard let entry = entries[id], entry.state != .pending else { return nil }
        remove(id)
        countAuthentication(entry.bits.count)
        return entry.bits
    }

    private mutating func countAuthentication(_ bits: Int) {
        counters.authenticationTaken += 1
        counters.authenticationBits += UInt64(bits)
    }

    /// Removes a held key in any state (journaled).
    private mutating func remove(_ id: KeyID) {
        guard let entry = entries.removeValue(forKey: id) else { return }
        switch entry.state {
        case .available: dropFromQueue(id, bits: entry.bits.count)
        case .pending: pendingKeys -= 1
        case .reserved: break
        }
        journal.append(.removed(id))
    }

    private mutating func makeAvailable(_ id: KeyID, bits: Int) {
        position[id] = queueBase + queue.count
        queue.append(id)
        availableKeys += 1
        availableBits += bits
    }

    private mutating func dropFromQueue(_ id: KeyID, bits: Int) {
        position[id] = nil
        availableKeys -= 1
        availableBits -= bits
    }

    /// An available key leaves the queue by reservation.
    private mutating func leaveQueue(_ id: KeyID) { dropFromQueue(id, bits: entries[id]!.bits.count) }

    private func isCurrent(_ id: KeyID, at index: Int) -> Bool { position[id] == queueBase + index }

    /// Drops stale entries from the front of the queue and, now and then, the dead prefix.
    private mutating func compactQueue() {
        while queueHead < queue.count && !isCurrent(queue[queueHead], at: queueHead) { queueHead += 1 }
        if queueHead > 4096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueBase += queueHead
            queueHead = 0
        }
    }
}
