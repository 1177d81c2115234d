import QKDCore
import QKDKeyPool
import QKDWire

/// One link end's pool agreement (`PoolSync`, message kind 25), as a pure instance. When a
/// link comes up (start, restart of either end, a flap) its quantum session stops and the two
/// ends agree their pools before any frame: the `a` end (the offerer) offers a fresh nonce and
/// the IDs of every key it holds; the `b` end (the answerer) keeps the keys both hold, drops
/// the rest, answers with its own nonce and the IDs it kept, and starts its session; the
/// offerer keeps those and starts too. Both then hold the same set.
///
/// Contract:
/// - An offer at or below the highest nonce the answerer has answered is stale (its key list no
///   longer holds) and MUST be ignored; a repeat of the offer just answered gets the same answer
///   again while that session is current (the first answer may have been lost).
/// - The offerer accepts only the answer that echoes its current offer, once.
/// - An answerer that comes up without a fresh offer asks for one (`PoolSync(0, 0, [])`): the
///   offerer may still be running the old session.
/// - An unanswered offer is repeated, with the same nonce, every `retryNs`; so is an answerer's
///   request for an offer, until an offer comes (a lost request would leave the link idle).
/// - Nonces are `epoch << 24 | counter` (the epoch is the store's start count, persisted), so no
///   two sessions of a link share a nonce pair, and one seed still reproduces one run.
/// - The pool passed in MUST be this link end's; every change to it happens here, and the
///   caller makes it durable before it sends anything this returns.
public struct PoolAgreement: Sendable {
    public enum Role: Sendable, Equatable {
        /// The link's `a` end (Alice).
        case offerer
        /// The link's `b` end (Bob).
        case answerer
    }

    public enum Directive: Sendable, Equatable {
        case send(PoolSync)
        /// Stop the link's quantum session: its unfinished rounds are lost.
        case stopSession
        /// The pools agree: start the session with this number (the same at both ends);
        /// `confirmedKeys` pending keys became available at this end by the agreement.
        case startSession(UInt64, confirmedKeys: Int)
        case log(LogLevel, String, [String: String])
    }

    public let role: Role
    public let link: String
    /// The store's start count: the high bits of every nonce this end makes.
    public let epoch: UInt64
    public let retryNs: UInt64

    public private(set) var isUp = false
    private var counter: UInt64 = 0
    /// Offerer: the nonce of the current offer, when it went out, and whether it was answered.
    private var offered: UInt64?
    private var offeredAt: Instant?
    private var accepted = false
    /// Answerer: the latest offer not answered yet, the highest offer nonce ever answered, and
    /// the answer of this link-up's session.
    private var pendingOffer: PoolSync?
    private var highestAnswered: UInt64 = 0
    private var answered: (offer: UInt64, answer: PoolSync)?
    /// Answerer: when it last asked for an offer it has not had yet.
    private var requestedAt: Instant?

    public init(role: Role, link: String, epoch: UInt64, retryNs: UInt64 = 2_000_000_000) {
        self.role = role
        self.link = link
        self.epoch = epoch
        self.retryNs = retryNs
    }

    /// Whether this end's session runs on an agreed pool (since the last link-up).
    public var isAgreed: Bool {
        switch role {
        case .offerer: accepted && offered != nil
        case .answerer: answered != nil
        }
    }

    /// The link came up: the session stops and the pool is no longer agreed; the offerer
    /// offers, the answerer answers the offer it holds or asks for one.
    public mutating func linkUp(at now: Instant, pool: inout KeyPool) -> [Directive] {
        isUp = true
        return restart(at: now, pool: &pool)
    }

    /// Agrees the pools again on a link that stays up (a free-space link after its pass's block:
    /// the keys both ends hold pending become available at both, with no later round to
    /// acknowledge them). The session stops and a new one starts once agreed, as at a link-up.
    public mutating func agreeAgain(at now: Instant, pool: inout KeyPool) -> [Directive] {
        guard isUp else { return [] }
        return restart(at: now, pool: &pool)
    }

    /// The link went down: the session stops, the pool is no longer agreed, offers lapse.
    public mutating func linkDown(pool: inout KeyPool) -> [Directive] {
        isUp = false
        offered = nil
        offeredAt = nil
        answered = nil
        requestedAt = nil
        pool.desynchronise()
        return [.stopSession]
    }

    /// Repeats an offer, or a request for one, that was not answered within `retryNs`.
    public mutating func tick(at now: Instant, pool: inout KeyPool) -> [Directive] {
        guard let due = nextDeadline(), due <= now else { return [] }
        switch role {
        case .offerer: return offer(nonce: offered!, at: now, pool: pool)
        case .answerer: return request(at: now)
        }
    }

    /// When `tick` must next run (nil: nothing to repeat).
    public func nextDeadline() -> Instant? {
        let since: Instant? = switch role {
        case .offerer: offered != nil && !accepted ? offeredAt : nil
        case .answerer: isUp && answered == nil ? requestedAt : nil
        }
        return since?.advanced(byNanoseconds: retryNs)
    }

    /// A `PoolSync` from the peer.
    public mutating func received(_ sync: PoolSync, at now: Instant, pool: inout KeyPool) -> [Directive] {
        switch role {
        case .answerer:
            guard sync.echo == 0, sync.nonce != 0 else {
                return [.log(.warning, "pool sync answer or request sent to the link's b end", ["link.id": link])]
            }
            if sync.nonce < highestAnswered { return [] }  // stale: its key list no longer holds
            if sync.nonce == highestAnswered {
                // A repeated offer: the same answer if its session is still the current one.
                if let done = answered, done.offer == sync.nonce, isUp { return [.send(done.answer)] }
                return []
            }
            pendingOffer = sync
            return isUp ? answer(sync, at: now, pool: &pool) : []
        case .offerer:
            if sync.nonce == 0 && sync.echo == 0 {
                // The answerer asks for a fresh offer (its side restarted the link).
                return isUp ? restart(at: now, pool: &pool) : []
            }
            guard let nonce = offered, sync.echo == nonce, !accepted, isUp else { return [] }  // stale or repeated answer
            let (removed, confirmed) = pool.synchronise(peerHolds: Set(sync.held))
            accepted = true
            return started(alice: nonce, bob: sync.nonce, removed: removed, confirmed: confirmed)
        }
    }

    private mutating func restart(at now: Instant, pool: inout KeyPool) -> [Directive] {
        pool.desynchronise()
        answered = nil
        switch role {
        case .offerer:
            return [.stopSession] + offer(nonce: nextNonce(), at: now, pool: pool)
        case .answerer:
            if let offer = pendingOffer, offer.nonce > highestAnswered { return answer(offer, at: now, pool: &pool) }
            return [.stopSession] + request(at: now)
        }
    }

    private mutating func request(at now: Instant) -> [Directive] {
        requestedAt = now
        return [.send(PoolSync(nonce: 0, echo: 0, held: []))]
    }

    private mutating func nextNonce() -> UInt64 {
        counter += 1
        return epoch << 24 | (counter & 0xFF_FFFF)
    }

    private mutating func offer(nonce: UInt64, at now: Instant, pool: KeyPool) -> [Directive] {
        offered = nonce
        offeredAt = now
        accepted = false
        return [.send(PoolSync(nonce: nonce, echo: 0, held: pool.heldIDs))]
    }

    /// The answerer keeps the keys both hold, answers with what it kept, and starts.
    private mutating func answer(_ offer: PoolSync, at now: Instant, pool: inout KeyPool) -> [Directive] {
        let (removed, confirmed) = pool.synchronise(peerHolds: Set(offer.held))
        let reply = PoolSync(nonce: nextNonce(), echo: offer.nonce, held: pool.heldIDs)
        answered = (offer.nonce, reply)
        highestAnswered = offer.nonce
        pendingOffer = nil
        requestedAt = nil
        return [.stopSession, .send(reply)] + started(alice: offer.nonce, bob: reply.nonce, removed: removed, confirmed: confirmed)
    }

    private func started(alice: UInt64, bob: UInt64, removed: Int, confirmed: Int) -> [Directive] {
        let session = QuantumLinkEngine.session(aliceNonce: alice, bobNonce: bob)
        return [.startSession(session, confirmedKeys: confirmed),
                .log(removed > 0 ? .warning : .info, "pool agreed with peer, session started",
                     ["link.id": link, "session": "\(session)", "removed_keys": "\(removed)"])]
    }
}
