import QKDCore

/// One link end's key pool as a pure state machine (no I/O, no clock: instants are passed
/// in). Keys are identified by their `KeyID`, the same at both ends of the link.
///
/// States: `pending` (distilled and stored here, not yet known to be stored at the peer) →
/// `available` → consumed (gone). A relay hop consumes its keys in the step that names them to
/// the peer (`consume(count:)`) or reads the peer's names (`consume(named:)`): nothing is ever
/// set aside to be collected later.
///
/// The oldest `authenticationReserve` available keys are the link's own: `consume(count:)`
/// never hands them out; Wegman–Carter authentication takes the oldest one
/// (`takeOldestForAuthentication`, the end that tags) or a named one (`takeForAuthentication(_:)`,
/// the end that verifies). Both ends keep the same order, so relays and authentication never
/// collide.
///
/// Guarantees (checked by model-based tests): a key is handed out at most once; a pending key is
/// never handed out; a key disappears only by consumption, authentication, synchronisation with
/// the peer (it is not held there), a relay that named it and failed, or by being dropped at
/// deposit because the pool is full (each counted). Every change that must survive a crash is recorded in a
/// journal (`drainJournal`) that the shell writes to disk before acting on the change.
public struct KeyPool: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Keys held (pending + available) at most; deposits beyond are dropped and counted.
        public var maxKeyCount: Int
        /// Oldest available keys kept for the link's own authentication.
        public var authenticationReserve: Int

        public init(maxKeyCount: Int = 100_000, authenticationReserve: Int = 64) {
            self.maxKeyCount = maxKeyCount
            self.authenticationReserve = authenticationReserve
        }
    }

    public enum State: Equatable, Sendable {
        case pending
        case available
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
        /// The key is not available (never deposited, pending, or already consumed or dropped).
        case unknownKey(KeyID)
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
    /// goes down): consuming keys needs it.
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
    public func state(of id: KeyID) -> State? { entries[id]?.state }

    /// Every held key (pending or available), sorted: what `synchronise` compares.
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

    /// The link went down: nothing is consumed until the next `synchronise`.
    public mutating func desynchronise() { isSynchronised = false }

    /// Consumes `count` keys outside the authentication reserve at once, oldest first (the
    /// sending end of a relay hop, which names them to the peer): all or nothing.
    public mutating func consume(count: Int) throws(Failure) -> [(id: KeyID, bits: BitVector)] {
        guard isSynchronised else { throw .notSynchronised }
        let spare = availableKeys - configuration.authenticationReserve
        guard count > 0, count <= spare else { throw .insufficient(requested: count, available: max(0, spare)) }
        compactQueue()
        var picked: [(id: KeyID, bits: BitVector)] = []
        var reserve: [KeyID] = []
        reserve.reserveCapacity(configuration.authenticationReserve)
        var i = queueHead
        while picked.count < count && i < queue.count {
            let id = queue[i]
            i += 1
            guard isCurrent(id, at: i - 1) else { continue }
            if reserve.count < configuration.authenticationReserve {
                reserve.append(id)
                continue
            }
            picked.append((id, entries[id]!.bits))
        }
        for (id, _) in picked { consumeHeld(id) }
        // The walked stretch now holds the reserve, the keys just taken and those taken before
        // (stale entries, left behind the reserve by every earlier call). Moving the reserve to
        // the stretch's end, in order, makes all of that a dead prefix, so the next call walks
        // the reserve and its own keys only: without it each call walked every key ever taken
        // (measured: 2.7 ms per relay after 40,000 link keys consumed, make bench kme.abuse_*).
        let start = i - reserve.count
        for (k, id) in reserve.enumerated() {
            queue[start + k] = id
            position[id] = queueBase + start + k
        }
        queueHead = start
        return picked
    }

    /// Consumes the keys the peer named (the receiving end of a relay hop): all or nothing,
    /// each available here. If one is not, the named keys held here are discarded anyway (the
    /// peer has used them).
    public mutating func consume(named ids: [KeyID]) throws(Failure) -> [BitVector] {
        do throws(Failure) {
            guard isSynchronised else { throw Failure.notSynchronised }
            for id in ids where entries[id]?.state != .available { throw Failure.unknownKey(id) }
            guard Set(ids).count == ids.count else { throw Failure.duplicateKey(ids[0]) }
        } catch {
            for id in ids where entries[id] != nil && entries[id]!.state != .pending {
                remove(id)
                counters.discarded += 1
            }
            throw error
        }
        return ids.map { id in
            let bits = entries[id]!.bits
            consumeHeld(id)
            return bits
        }
    }

    /// An available key leaves the pool for good, counted as consumed.
    private mutating func consumeHeld(_ id: KeyID) {
        counters.consumed += 1
        counters.consumedBits += UInt64(entries[id]!.bits.count)
        remove(id)
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

    /// Takes a key the peer named for authentication (available: a pending one is refused).
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
