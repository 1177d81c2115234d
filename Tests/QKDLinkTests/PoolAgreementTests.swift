import QKDCore
import QKDKeyPool
import QKDLink
import QKDWire
import Testing

/// Both ends of one link's pool agreement, messages carried by hand (or by a seeded lossy,
/// duplicating, reordering channel), with a manual clock.
struct AgreementPair {
    var a: PoolAgreement
    var b: PoolAgreement
    var poolA: KeyPool
    var poolB: KeyPool
    /// Messages in flight: (to the b end?, message).
    var wire: [(toB: Bool, sync: PoolSync)] = []
    var sessionA: UInt64?
    var sessionB: UInt64?
    var logs: [String] = []

    init(held a: [UInt64], _ b: [UInt64], epochA: UInt64 = 1, epochB: UInt64 = 1) {
        self.a = PoolAgreement(role: .offerer, link: "A-B", epoch: epochA)
        self.b = PoolAgreement(role: .answerer, link: "A-B", epoch: epochB)
        poolA = Self.pool(a)
        poolB = Self.pool(b)
    }

    static func key(_ n: UInt64) -> (id: KeyID, bits: BitVector) { (KeyID(randomHigh: 0, randomLow: n), BitVector(count: 256)) }

    static func pool(_ ids: [UInt64]) -> KeyPool {
        var pool = KeyPool()
        _ = try! pool.deposit(ids.map(key), pending: true)
        return pool
    }

    static func ids(_ pool: KeyPool) -> [UInt64] { pool.heldIDs.map { $0.low & 0xFFFF_FFFF } }

    mutating func apply(_ directives: [PoolAgreement.Directive], atA: Bool) {
        for d in directives {
            switch d {
            case .send(let sync): wire.append((atA, sync))
            case .stopSession: if atA { sessionA = nil } else { sessionB = nil }
            case .startSession(let s, _): if atA { sessionA = s } else { sessionB = s }
            case .log(_, let message, _): logs.append(message)
            }
        }
    }

    mutating func upA(_ t: UInt64) { apply(a.linkUp(at: .ms(t), pool: &poolA), atA: true) }
    mutating func upB(_ t: UInt64) { apply(b.linkUp(at: .ms(t), pool: &poolB), atA: false) }
    mutating func downA() { apply(a.linkDown(pool: &poolA), atA: true) }
    mutating func downB() { apply(b.linkDown(pool: &poolB), atA: false) }
    mutating func tickA(_ t: UInt64) { apply(a.tick(at: .ms(t), pool: &poolA), atA: true) }
    mutating func tickB(_ t: UInt64) { apply(b.tick(at: .ms(t), pool: &poolB), atA: false) }

    /// Delivers message `i` of the wire (removing it).
    mutating func deliver(_ i: Int = 0, at t: UInt64 = 0) {
        let (toB, sync) = wire.remove(at: i)
        if toB {
            apply(b.received(sync, at: .ms(t), pool: &poolB), atA: false)
        } else {
            apply(a.received(sync, at: .ms(t), pool: &poolA), atA: true)
        }
    }

    mutating func deliverAll(at t: UInt64 = 0) {
        while !wire.isEmpty { deliver(0, at: t) }
    }

    /// Both ends run one session on the same keys.
    var agreed: Bool {
        a.isAgreed && b.isAgreed && sessionA != nil && sessionA == sessionB && poolA.heldIDs == poolB.heldIDs
            && poolA.isSynchronised && poolB.isSynchronised
    }
}

@Suite struct PoolAgreementTests {
    @Test func bothEndsKeepTheKeysBothHoldAndStartOneSession() {
        var p = AgreementPair(held: [1, 2, 3, 5], [2, 3, 4, 5])
        p.upA(0)
        p.upB(0)
        // Bob came up without an offer: he asks for one; Alice's offer is already on its way.
        #expect(p.wire.map(\.sync.echo) == [0, 0])
        p.deliverAll()
        #expect(p.agreed)
        #expect(AgreementPair.ids(p.poolA) == [2, 3, 5])
        #expect(p.poolA.pendingKeys == 0 && p.poolB.pendingKeys == 0)  // held at both ends: available
        #expect(p.poolA.counters.orphansRemoved == 1 && p.poolB.counters.orphansRemoved == 1)
        #expect(p.logs.contains("pool agreed with peer, session started"))
    }

    @Test func aLostAnswerIsRepeatedForTheRepeatedOffer() {
        var p = AgreementPair(held: [1, 2], [1, 2])
        p.upB(0)
        p.wire.removeAll()  // Bob's request is lost
        p.upA(0)
        p.deliver()  // the offer reaches Bob, who answers and starts
        #expect(p.sessionB != nil)
        let answer = p.wire.removeFirst()  // the answer is lost
        #expect(!p.a.isAgreed)
        p.tickA(1999)
        #expect(p.wire.isEmpty)  // not before the retry interval
        #expect(p.a.nextDeadline() == .ms(2000))
        p.tickA(2000)
        #expect(p.wire.count == 1 && p.wire[0].sync.nonce == answer.sync.echo)  // the same offer again
        p.deliver()
        #expect(p.wire.count == 1 && p.wire[0].sync == answer.sync)  // the same answer again
        p.deliverAll()
        #expect(p.agreed)
        #expect(p.a.nextDeadline() == nil)
    }

    @Test func aStaleOfferChangesNothing() {
        var p = AgreementPair(held: [1, 2, 3], [1, 2, 3])
        p.upA(0)
        p.upB(0)
        let first = p.wire.first { $0.toB }!.sync
        p.deliverAll()
        #expect(p.agreed)
        // Alice's link flaps: a newer offer, answered.
        p.downA()
        p.upA(10)
        p.deliverAll()
        #expect(p.agreed)
        let session = p.sessionB
        // The first offer, delayed in the network, arrives now: ignored.
        p.wire.append((true, PoolSync(nonce: first.nonce, echo: 0, held: [])))
        p.deliver()
        #expect(p.wire.isEmpty)
        #expect(p.sessionB == session)
        #expect(AgreementPair.ids(p.poolB) == [1, 2, 3])
        #expect(p.agreed)
    }

    @Test func anAnswerToAnOlderOfferIsIgnored() {
        var p = AgreementPair(held: [1, 2, 3], [2, 3])
        p.upA(0)
        p.upB(0)
        p.deliver()  // Alice's offer reaches Bob: he answers (answer in flight)
        // Alice restarts the link before the answer arrives: a fresh offer crosses the answer.
        p.downA()
        p.upA(5)
        let answerIndex = p.wire.firstIndex { !$0.toB && $0.sync.echo != 0 }!
        p.deliver(answerIndex)
        #expect(!p.a.isAgreed && p.sessionA == nil)  // answered an older offer: not accepted
        p.deliverAll()
        #expect(p.agreed)
        #expect(AgreementPair.ids(p.poolA) == [2, 3])
    }

    @Test func aRepeatedAnswerIsAcceptedOnce() {
        var p = AgreementPair(held: [1, 2], [1, 2])
        p.upA(0)
        p.upB(0)
        p.wire.removeAll { !$0.toB }  // drop Bob's request
        p.deliver()
        let answer = p.wire[0]
        p.deliver()
        let session = p.sessionA
        p.wire.append(answer)
        p.deliver()
        #expect(p.sessionA == session && p.wire.isEmpty && p.logs.filter { $0.hasPrefix("pool agreed") }.count == 2)
    }

    @Test func bobRestartingTheLinkAsksForAFreshOffer() {
        var p = AgreementPair(held: [1, 2, 3], [1, 2, 3])
        p.upA(0)
        p.upB(0)
        p.deliverAll()
        #expect(p.agreed)
        let before = p.sessionA
        p.downB()
        #expect(p.sessionB == nil && !p.poolB.isSynchronised)
        p.upB(10)
        #expect(p.wire.count == 1 && p.wire[0].sync == PoolSync(nonce: 0, echo: 0, held: []))
        p.deliverAll()
        #expect(p.agreed)
        #expect(p.sessionA != before)  // a new session: new seeds and key IDs
    }

    @Test func aRestartedOffererWithANewEpochIsAnswered() {
        var p = AgreementPair(held: [1, 2, 3], [1, 2, 3])
        p.upA(0)
        p.upB(0)
        p.deliverAll()
        let firstSession = p.sessionA
        // Alice's process restarts: her store was opened once more (epoch 2), her counter is new.
        p.a = PoolAgreement(role: .offerer, link: "A-B", epoch: 2)
        p.downB()  // Bob sees the peer restart: down, then up
        p.upB(10)
        p.upA(10)
        p.deliverAll()
        #expect(p.agreed)
        #expect(p.sessionA != firstSession)
    }

    @Test func aRestartedOffererWithTheSameEpochIsNotFresh() {
        // Why the epoch is in every nonce: Alice's counter starting over makes her first offer
        // equal to one Bob answered before his own restart, and he must not answer it.
        var p = AgreementPair(held: [1, 2], [1, 2])
        p.upA(0)
        p.upB(0)
        p.deliverAll()
        p.a = PoolAgreement(role: .offerer, link: "A-B", epoch: 1)
        p.downB()
        p.upB(10)
        p.wire.removeAll()  // Bob's request
        p.upA(10)
        p.deliver()
        #expect(p.wire.isEmpty && p.sessionB == nil)
    }

    @Test func bobRepeatsALostRequestForAnOffer() {
        var p = AgreementPair(held: [1, 2], [1, 2])
        p.upA(0)
        p.upB(0)
        p.deliverAll()
        #expect(p.agreed)
        p.downB()
        p.upB(100)
        p.wire.removeAll()  // the request is lost: Alice still runs the old session
        #expect(p.b.nextDeadline() == .ms(2100))
        p.tickB(2099)
        #expect(p.wire.isEmpty)
        p.tickB(2100)
        #expect(p.wire.count == 1 && p.wire[0].sync == PoolSync(nonce: 0, echo: 0, held: []))
        p.deliverAll()
        #expect(p.agreed)
        #expect(p.b.nextDeadline() == nil)
    }

    @Test func anOfferWhileBobIsDownIsAnsweredWhenHeComesUp() {
        var p = AgreementPair(held: [1, 2, 3], [1, 3])
        p.upA(0)
        p.deliver()
        #expect(p.wire.isEmpty && p.sessionB == nil)
        p.upB(5)
        #expect(p.sessionB != nil)
        p.deliverAll()
        #expect(p.agreed)
        #expect(AgreementPair.ids(p.poolB) == [1, 3])
    }

    @Test func anAnswerOrRequestSentToBobIsRefused() {
        var p = AgreementPair(held: [1], [1])
        p.upB(0)
        p.wire.removeAll()
        p.wire.append((true, PoolSync(nonce: 7, echo: 3, held: [])))
        p.wire.append((true, PoolSync(nonce: 0, echo: 0, held: [])))
        p.deliverAll()
        #expect(p.logs.filter { $0 == "pool sync answer or request sent to the link's b end" }.count == 2)
        #expect(p.sessionB == nil && !p.b.isAgreed && AgreementPair.ids(p.poolB) == [1])
    }

    /// Model check: random flaps at either end and a channel that loses, duplicates and
    /// reorders, then a quiet period of a reliable channel with retries: both ends always end
    /// on one session with the same keys, never a key only one end holds.
    @Test func randomLossDuplicationReorderingAndFlapsConverge() {
        for seed in UInt64(0)..<300 {
            var g = Xoshiro256(seed: seed)
            var p = AgreementPair(held: [1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7])
            var t: UInt64 = 0
            p.upA(t)
            p.upB(t)
            for _ in 0..<40 {
                t += 100 + g.next() % 900
                switch g.next() % 8 {
                case 0: p.downA(); p.upA(t)
                case 1: p.downB(); p.upB(t)
                case 2: if !p.wire.isEmpty { p.wire.remove(at: Int(g.next() % UInt64(p.wire.count))) }
                case 3: if !p.wire.isEmpty { p.wire.append(p.wire[Int(g.next() % UInt64(p.wire.count))]) }
                case 4: p.tickA(t); p.tickB(t)
                default: if !p.wire.isEmpty { p.deliver(Int(g.next() % UInt64(p.wire.count)), at: t) }
                }
            }
            // Quiet: every message delivered in order, Alice's retries run.
            for _ in 0..<4 {
                p.deliverAll(at: t)
                t += 2000
                p.tickA(t)
                p.tickB(t)
            }
            p.deliverAll(at: t)
            #expect(p.agreed, "seed \(seed)")
            #expect(Set(AgreementPair.ids(p.poolA)).isSubset(of: [2, 3, 4, 5, 6]), "seed \(seed)")
        }
    }
}
