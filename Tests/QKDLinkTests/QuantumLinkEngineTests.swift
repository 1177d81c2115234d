import QKDCore
import QKDKeyPool
import QKDLink
import QKDPostProcessing
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// Alice's and Bob's engines driven directly with a manual clock, messages passed by hand.
@Suite struct QuantumLinkEngineTests {
    static let topology = TestTopologies.pair

    func engines(at now: Instant) -> (QuantumLinkEngine, QuantumLinkEngine) {
        let link = Self.topology.links[0]
        let key = Self.bootstrap.authenticationKey
        return (QuantumLinkEngine(link: link, node: NodeID("A"), topologySeed: 5, secrecy: .secret, authenticationKey: key, timeScale: 1,
                                  now: now, blockBits: 20_000, asymptoticBound: true),
                QuantumLinkEngine(link: link, node: NodeID("B"), topologySeed: 5, secrecy: .secret, authenticationKey: key, timeScale: 1,
                                  now: now, blockBits: 20_000, asymptoticBound: true))
    }

    /// The link's bootstrap secret, as `qkdctl up` would install it at both ends.
    static let bootstrap: LinkBootstrap = {
        var random = SecretRandom.system
        return LinkBootstrap.random(&random)
    }()

    /// A link end's pool with the link's pre-shared keys, agreed with the peer's.
    static func pool() -> KeyPool {
        let psk = bootstrap.keys
        var pool = KeyPool()
        try! pool.deposit(psk, pending: false)
        pool.synchronise(peerHolds: Set(psk.map(\.id)))
        return pool
    }

    /// Delivers every `.send` effect to the other engine until nothing is left; returns the
    /// blocks each side finished.
    func exchange(_ effects: [QuantumLinkEngine.Effect], from sender: inout QuantumLinkEngine, to receiver: inout QuantumLinkEngine,
                  at now: Instant, senderPool: inout KeyPool, receiverPool: inout KeyPool)
        -> (senderBlocks: [SiftedBlock], receiverBlocks: [SiftedBlock]) {
        var queue: [(toReceiver: Bool, kind: MessageKind, payload: [UInt8])] = effects.compactMap {
            if case .send(let k, let p) = $0 { (true, k, p) } else { nil }
        }
        var blocks: ([SiftedBlock], [SiftedBlock]) = ([], [])
        while !queue.isEmpty {
            let (toReceiver, kind, payload) = queue.removeFirst()
            let out = toReceiver ? receiver.received(kind, payload, at: now, pool: &receiverPool)
                : sender.received(kind, payload, at: now, pool: &senderPool)
            for effect in out {
                switch effect {
                case .send(let k, let p): queue.append((!toReceiver, k, p))
                case .block(let b): if toReceiver { blocks.1.append(b) } else { blocks.0.append(b) }
                case .log, .verdict, .passDistilled: break
                }
            }
        }
        return blocks
    }

    @Test func aliceFollowsTheWallClockAndBothEndsFinishTheSameBlocks() {
        let t0 = Instant(nanoseconds: 1_000_000_000)
        var (alice, bob) = engines(at: t0)
        var (alicePool, bobPool) = (Self.pool(), Self.pool())
        #expect(alice.role == .alice && bob.role == .bob)
        // Not started: nothing happens.
        #expect(alice.tick(at: t0.advanced(byMilliseconds: 50)).isEmpty)
        alice.start(session: 1, at: t0)
        bob.start(session: 1, at: t0)
        // 1e8 pulses/s and 1e6-pulse frames: 10 ms per frame. After 35 ms, 3 frames are due.
        let first = alice.tick(at: t0.advanced(byMilliseconds: 35))
        #expect(first.count == 3)
        var aliceBlocks: [SiftedBlock] = [], bobBlocks: [SiftedBlock] = []
        let r = exchange(first, from: &alice, to: &bob, at: t0.advanced(byMilliseconds: 35), senderPool: &alicePool, receiverPool: &bobPool)
        aliceBlocks += r.senderBlocks
        bobBlocks += r.receiverBlocks
        // The window (4 frames in flight) bounds a backlog: a long stall yields 4 frames, not 100.
        let burst = alice.tick(at: t0.advanced(byMilliseconds: 1035))
        #expect(burst.count == 4)
        #expect(alice.currentReport.lagSeconds > 0.9, "a 1 s stall must show as lag, got \(alice.currentReport.lagSeconds)")
        var now = t0.advanced(byMilliseconds: 1035)
        var pending = burst
        for _ in 0..<200 {
            let r = exchange(pending, from: &alice, to: &bob, at: now, senderPool: &alicePool, receiverPool: &bobPool)
            aliceBlocks += r.senderBlocks
            bobBlocks += r.receiverBlocks
            now = now.advanced(byMilliseconds: 10)
            pending = alice.tick(at: now)
        }
        #expect(aliceBlocks.count >= 2)
        #expect(aliceBlocks.map(\.index) == bobBlocks.map(\.index))
        for (a, b) in zip(aliceBlocks, bobBlocks) {
            #expect(a.statistics == b.statistics)
            #expect(a.key.count == b.key.count)
            let qber = Double(a.key.bits.hammingDistance(to: b.key.bits)) / Double(a.key.count)
            #expect(qber > 0.005 && qber < 0.03, "block \(a.index) QBER \(qber)")
        }
        // Distillation ran inside the engines: both pools hold the same available keys.
        #expect(alicePool.availableKeys > bobPool.configuration.authenticationReserve)
        #expect(alicePool.availableIDs.filter { bobPool.state(of: $0) == .available }.count >= alicePool.availableKeys - 1_000)
        // Four frames per 10 ms tick is 4x real time: the backlog is gone by the end.
        #expect(alice.currentReport.lagSeconds < 0.02)
        #expect(alice.currentReport.emulatedSeconds > 1.9)
    }

    /// A link whose topology says `block_pulses`: the engines close every block at N pulses
    /// (5 frames of 10^6 here), whatever its key bits.
    @Test func blocksOfNPulsesFromTheTopology() throws {
        let topology = try TopologyParser.parse("""
            name: q
            seed: 5
            defaults: { source_rate_hz: 1.0e8, block_pulses: 5.0e6 }
            nodes:
              - { id: A, lat: 0, lon: 0, role: metro-core }
              - { id: B, lat: 0, lon: 1, role: metro-core }
            links:
              - { a: A, b: B, length_km: 20 }
            """, file: "q.yaml")
        let link = topology.links[0]
        let key = Self.bootstrap.authenticationKey
        let t0 = Instant(nanoseconds: 0)
        var alice = QuantumLinkEngine(link: link, node: NodeID("A"), topologySeed: 5, secrecy: .secret, authenticationKey: key,
                                      timeScale: 1, now: t0, asymptoticBound: true)
        var bob = QuantumLinkEngine(link: link, node: NodeID("B"), topologySeed: 5, secrecy: .secret, authenticationKey: key,
                                    timeScale: 1, now: t0, asymptoticBound: true)
        var (alicePool, bobPool) = (Self.pool(), Self.pool())
        alice.start(session: 1, at: t0)
        bob.start(session: 1, at: t0)
        var blocks: [SiftedBlock] = []
        var now = t0
        // 10 ms per frame: 14 blocks of 5 frames fit in 700 ms of emulated time.
        for _ in 0..<70 where blocks.count < 3 {
            now = now.advanced(byMilliseconds: 10)
            blocks += exchange(alice.tick(at: now), from: &alice, to: &bob, at: now, senderPool: &alicePool, receiverPool: &bobPool).senderBlocks
        }
        #expect(blocks.count == 3)
        for b in blocks { #expect(b.statistics.pulses.reduce(0, +) == 5_000_000, "block \(b.index): \(b.statistics.pulses)") }
    }

    @Test func aNewSessionDropsTheOldRoundsAndHostileMessagesDiscardOnlyTheirRound() {
        let t0 = Instant(nanoseconds: 0)
        var (alice, bob) = engines(at: t0)
        var pool = Self.pool()
        alice.start(session: 1, at: t0)
        bob.start(session: 1, at: t0)
        let frames = alice.tick(at: t0.advanced(byMilliseconds: 20))
        guard case .send(.quantumFrame, let payload) = frames.first else {
            Issue.record("no frame")
            return
        }
        // Bob measures, then Alice's session restarts before his announcement arrives.
        let announcement = bob.received(.quantumFrame, payload, at: t0, pool: &pool)
        alice.stop(at: t0)
        alice.start(session: 2, at: t0)
        guard case .send(.siftAnnouncement, let a) = announcement.first else {
            Issue.record("no announcement")
            return
        }
        let stale = alice.received(.siftAnnouncement, a, at: t0, pool: &pool)
        #expect(stale.contains { if case .log(.warning, "round discarded", _) = $0 { true } else { false } })
        // Garbage and misplaced messages: refused, counted, nothing sent back.
        let before = bob.currentReport.roundsDiscarded
        #expect(bob.received(.quantumFrame, [1, 2, 3], at: t0, pool: &pool).allSatisfy { if case .send = $0 { false } else { true } })
        #expect(bob.received(.siftAnnouncement, a, at: t0, pool: &pool).allSatisfy { if case .send = $0 { false } else { true } })
        #expect(bob.currentReport.roundsDiscarded == before + 2)
        // The new session works.
        let next = alice.tick(at: t0.advanced(byMilliseconds: 40))
        #expect(!next.isEmpty)
        #expect(alice.currentReport.session == 2)
    }

    /// A pool that counts the operations done on it (the distiller's only way in).
    struct CountingPool: DistillationPool {
        var pool: KeyPool
        var operations = 0

        mutating func takeOldestForAuthentication() -> (id: KeyID, bits: BitVector)? {
            operations += 1
            return pool.takeOldestForAuthentication()
        }
        mutating func takeForAuthentication(_ id: KeyID) -> BitVector? {
            operations += 1
            return pool.takeForAuthentication(id)
        }
        mutating func confirm(_ ids: [KeyID]) {
            operations += 1
            pool.confirm(ids)
        }
        mutating func deposit(_ keys: [(id: KeyID, bits: BitVector)], pending: Bool) throws(KeyPool.Failure) -> Int {
            operations += 1
            return try pool.deposit(keys, pending: pending)
        }
        mutating func discardPending(_ ids: [KeyID]) -> Int {
            operations += 1
            return pool.discardPending(ids)
        }
    }

    /// Reconciliation reaches the pool only for its few operations (a node's shell locks its
    /// pools per operation, and its event loop waits behind nothing longer): Cascade's many
    /// requests and replies touch it once per block (Bob's authentication key when Cascade
    /// ends), and a whole block takes a handful of operations at each end, however many
    /// messages Cascade exchanged.
    @Test func reconciliationTouchesThePoolOnlyForItsOperations() {
        let t0 = Instant(nanoseconds: 0)
        var (alice, bob) = engines(at: t0)
        var pools = (alice: CountingPool(pool: Self.pool()), bob: CountingPool(pool: Self.pool()))
        alice.start(session: 1, at: t0)
        bob.start(session: 1, at: t0)
        var messages: [MessageKind: Int] = [:], operations: [MessageKind: Int] = [:]
        var blocks = 0
        var now = t0
        for _ in 0..<400 where blocks < 3 {
            now = now.advanced(byMilliseconds: 10)
            var queue: [(toBob: Bool, kind: MessageKind, payload: [UInt8])] = alice.tick(at: now).compactMap {
                if case .send(let k, let p) = $0 { (true, k, p) } else { nil }
            }
            while !queue.isEmpty {
                let (toBob, kind, payload) = queue.removeFirst()
                let before = pools.alice.operations + pools.bob.operations
                let out = toBob ? bob.received(kind, payload, at: now, pool: &pools.bob) : alice.received(kind, payload, at: now, pool: &pools.alice)
                messages[kind, default: 0] += 1
                operations[kind, default: 0] += pools.alice.operations + pools.bob.operations - before
                for effect in out {
                    if case .send(let k, let p) = effect { queue.append((!toBob, k, p)) }
                    if case .block = effect, !toBob { blocks += 1 }
                }
            }
        }
        let finished = messages[.reconciliationResult] ?? 0
        #expect(blocks == 3 && finished >= 2, "blocks \(blocks), reconciled \(finished)")
        let cascade = (messages[.cascadeRequest] ?? 0) + (messages[.cascadeReply] ?? 0)
        #expect(cascade > 10 * finished, "Cascade exchanged \(cascade) messages for \(finished) blocks")
        #expect(operations[.cascadeRequest, default: 0] == 0)
        #expect(operations[.cascadeReply, default: 0] <= messages[.reconciliationDone, default: 0])
        for kind in [MessageKind.quantumFrame, .siftAnnouncement, .siftReply, .estimationReveal, .estimationResult] {
            #expect(operations[kind, default: 0] == 0, "\(kind)")
        }
        let total = operations.values.reduce(0, +)
        #expect(total <= 8 * (messages[.reconciliationDone] ?? 0), "\(operations) for \(messages)")
        // And the keys went where they belong: both pools hold the committed keys.
        #expect(pools.alice.pool.availableKeys > Self.bootstrap.keys.count - 2 * finished)
        #expect(pools.alice.pool.availableIDs.allSatisfy { pools.bob.pool.state(of: $0) == .available })
    }
}
