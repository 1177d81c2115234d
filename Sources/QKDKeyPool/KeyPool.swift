import QKDCore

/// One link end's key pool as a pure state machine (no I/O, no clock: instants are passed
/// in). Keys are identified by their key ID (the same at both ends of the link).
///
/// States: `available` → `reserved` (for an application or a relay, with a deadline) →
/// `consumed`; a reservation can be released back to `available` (a voided relay) or expire
/// (never collected: the key is discarded, since the other end may have used it).
///
/// Guarantees (checked by model-based tests): a key is handed out at most once; reservations
/// never bring the available keys below `authenticationReserve` (those are the link's own,
/// taken oldest first by `takeForAuthentication`); a key disappears only by consumption, by
/// expiry, or by being dropped at deposit because the pool is full (each counted).
public struct KeyPool: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Keys held (available + reserved) at most; deposits beyond are dropped and counted.
        public var maxKeyCount: Int
        /// Available keys kept for the link's own authentication.
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
        case available
        case reserved(owner: String, deadline: Instant)
    }

    public struct Counters: Equatable, Sendable {
        public var deposited: UInt64 = 0
        public var dropped: UInt64 = 0
        public var consumed: UInt64 = 0
        public var consumedBits: UInt64 = 0
        public var expired: UInt64 = 0
        public var released: UInt64 = 0
        public var authenticationTaken: UInt64 = 0
    }

    public enum Failure: Error, Equatable, Sendable {
        /// Not enough keys outside the authentication reserve.
        case insufficient(requested: Int, available: Int)
        /// The key is unknown (never deposited, or already consumed, expired or dropped).
        case unknownKey(String)
        /// The key is reserved for someone else, or not reserved at all.
        case notReservedBy(String, key: String)
        case duplicateKey(String)
    }

    public let configuration: Configuration
    private var bits: [String: BitVector] = [:]
    private var states: [String: State] = [:]
    /// Keys in the order they became available (deposit, or release back), oldest first;
    /// `position` holds each held key's current absolute index, so stale entries are skipped.
    private var queue: [String] = []
    private var queueHead = 0
    private var queueBase = 0
    private var position: [String: Int] = [:]
    public private(set) var counters = Counters()

    public init(configuration: Configuration = .init()) { self.configuration = configuration }

    /// Keys in state `available` (kept up to date on every transition).
    public private(set) var availableKeys = 0

    public var heldKeys: Int { states.count }
    public var reservedKeys: Int { states.count - availableKeys }

    public func state(of id: String) -> State? { states[id] }

    /// Deposits keys; returns how many were dropped because the pool was full.
    @discardableResult
    public mutating func deposit(_ keys: [(id: String, bits: BitVector)]) throws(Failure) -> Int {
        var dropped = 0
        for (id, key) in keys {
            guard states[id] == nil else { throw .duplicateKey(id) }
            if states.count >= configuration.maxKeyCount {
                dropped += 1
                continue
            }
            states[id] = .available
            availableKeys += 1
            bits[id] = key
            enqueue(id)
            counters.deposited += 1
        }
        counters.dropped += UInt64(dropped)
        return dropped
    }

    /// Reserves the `count` oldest available keys for `owner` until `now + TTL`, provided at
    /// least `authenticationReserve` available keys remain.
    public mutating func reserve(count: Int, for owner: String, at now: Instant) throws(Failure) -> [String] {
        let spare = availableKeys - configuration.authenticationReserve
        guard count > 0, count <= spare else { throw .insufficient(requested: count, available: max(0, spare)) }
        compactQueue()
        var picked: [String] = []
        var i = queueHead
        let deadline = now.advanced(byNanoseconds: configuration.reservationTTLNs)
        while picked.count < count && i < queue.count {
            let id = queue[i]
            i += 1
            guard isCurrent(id, at: i - 1), states[id] == .available else { continue }
            states[id] = .reserved(owner: owner, deadline: deadline)
            availableKeys -= 1
            picked.append(id)
        }
        return picked
    }

    /// Hands a reserved key to its owner and consumes it: the bits leave the pool for good.
    public mutating func take(_ id: String, by owner: String) throws(Failure) -> BitVector {
        guard let state = states[id] else { throw .unknownKey(id) }
        guard case .reserved(let holder, _) = state, holder == owner else { throw .notReservedBy(owner, key: id) }
        let key = bits.removeValue(forKey: id)!
        states[id] = nil
        position[id] = nil
        counters.consumed += 1
        counters.consumedBits += UInt64(key.count)
        return key
    }

    /// Returns a reservation to the available keys (a relay voided before using the key).
    public mutating func release(_ id: String, by owner: String) throws(Failure) {
        guard let state = states[id] else { throw .unknownKey(id) }
        guard case .reserved(let holder, _) = state, holder == owner else { throw .notReservedBy(owner, key: id) }
        states[id] = .available
        availableKeys += 1
        enqueue(id)  // back in line, at the end
        counters.released += 1
    }

    /// Discards reservations whose deadline passed; returns their IDs.
    public mutating func expire(at now: Instant) -> [String] {
        var gone: [String] = []
        for (id, state) in states {
            if case .reserved(_, let deadline) = state, deadline <= now { gone.append(id) }
        }
        for id in gone.sorted() {
            states[id] = nil
            bits[id] = nil
            position[id] = nil
            counters.expired += 1
        }
        return gone.sorted()
    }

    /// Takes the oldest key of the authentication reserve for the link's own use.
    public mutating func takeForAuthentication() -> (id: String, bits: BitVector)? {
        compactQueue()
        for i in queueHead..<queue.count {
            let id = queue[i]
            if isCurrent(id, at: i), states[id] == .available {
                let key = bits.removeValue(forKey: id)!
                states[id] = nil
                availableKeys -= 1
                position[id] = nil
                counters.authenticationTaken += 1
                return (id, key)
            }
        }
        return nil
    }

    private mutating func enqueue(_ id: String) {
        position[id] = queueBase + queue.count
        queue.append(id)
    }

    private func isCurrent(_ id: String, at index: Int) -> Bool { position[id] == queueBase + index }

    /// Drops entries that are no longer available, or stale, from the front of the queue.
    private mutating func compactQueue() {
        while queueHead < queue.count {
            let id = queue[queueHead]
            if isCurrent(id, at: queueHead) && states[id] == .available { break }
            queueHead += 1
        }
        if queueHead > 4096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueBase += queueHead
            queueHead = 0
        }
    }
}
