import QKDCore
import QKDKeyPool
import Testing

func kid(_ n: Int) -> KeyID { KeyID(high: 0x1111, low: UInt64(n)) }

/// Model-based test: random operations against a plain reference model, many seeds, with
/// crash-and-reload from what the journal wrote to a simulated disk.
@Suite struct KeyPoolModelTests {
    enum RefState: Equatable { case pending, available }

    @Test(arguments: Array(0..<40) as [UInt64])
    func randomOperationsAgreeWithTheReferenceModel(seed: UInt64) throws {
        var g = Xoshiro256(seed: seed)
        let config = KeyPool.Configuration(maxKeyCount: 50 + Int(g.nextBounded(100)), authenticationReserve: Int(g.nextBounded(10)))
        var pool = KeyPool(configuration: config)
        var model: [KeyID: RefState] = [:]
        var synchronised = true
        var bits: [KeyID: BitVector] = [:]
        var order: [KeyID] = []             // the order keys became available
        var disk: [(id: KeyID, pending: Bool)] = []  // the journal applied, in insertion order
        var delivered = Set<KeyID>()
        var dropped = 0, consumed = 0, discarded = 0, authentication = 0, orphans = 0
        var prior = KeyPool.Counters()      // counters of the pools before each reload
        var next = 0

        func available() -> [KeyID] { order.filter { model[$0] == .available } }
        func deliver(_ id: KeyID, _ got: BitVector) {
            #expect(!delivered.contains(id), "key \(id) delivered twice (seed \(seed))")
            #expect(got == bits[id])
            delivered.insert(id)
            model[id] = nil
        }
        func flush() {
            for change in pool.drainJournal() {
                switch change {
                case .added(let id, _, let pending): disk.append((id, pending))
                case .confirmed(let id): if let i = disk.firstIndex(where: { $0.id == id }) { disk[i].pending = false }
                case .removed(let id): disk.removeAll { $0.id == id }
                }
            }
        }
        _ = pool.synchronise(peerHolds: [])

        for step in 0..<700 {
            switch g.nextBounded(10) {
            case 0, 1:  // deposit a batch, pending (distilled here, peer not known) or available
                let n = Int(g.nextBounded(8)) + 1
                let pending = g.nextBounded(2) == 0
                let batch = (0..<n).map { _ -> (id: KeyID, bits: BitVector) in
                    next += 1
                    return (kid(next), BitVector(words: [g.next(), g.next(), g.next(), g.next()], count: 256))
                }
                let d = try pool.deposit(batch, pending: pending)
                var accepted = 0
                for (id, b) in batch where model.count < config.maxKeyCount {
                    model[id] = pending ? .pending : .available
                    bits[id] = b
                    if !pending { order.append(id) }
                    accepted += 1
                }
                #expect(d == n - accepted)
                dropped += d
            case 2:  // the peer confirms some pending keys (and names some unknown ones)
                let pending = model.filter { $0.value == .pending }.keys.sorted()
                let chosen = pending.filter { _ in g.nextBounded(2) == 0 } + [kid(1_000_000 + step)]
                pool.confirm(chosen)
                for id in chosen.sorted() where model[id] == .pending {
                    model[id] = .available
                    order.append(id)
                }
            case 3:  // the sending end of a relay hop consumes the oldest keys after the reserve
                let n = Int(g.nextBounded(5)) + 1
                let spare = available().count - config.authenticationReserve
                do {
                    let got = try pool.consume(count: n)
                    #expect(n <= spare && synchronised)
                    #expect(got.map(\.id) == Array(available().dropFirst(config.authenticationReserve).prefix(n)))
                    for (id, b) in got { deliver(id, b) }
                    consumed += got.count
                } catch {
                    #expect(n > spare || !synchronised, "refused \(n) with \(spare) spare")
                }
            case 4:  // the receiving end consumes the keys its peer named; sometimes one is not here
                var named = available().filter { _ in g.nextBounded(4) == 0 }
                switch g.nextBounded(4) {
                case 0: if let p = model.first(where: { $0.value == .pending })?.key { named.append(p) }
                case 1: named.append(kid(3_000_000 + step))
                default: break
                }
                guard !named.isEmpty else { continue }
                let whole = synchronised && named.allSatisfy { model[$0] == .available }
                do {
                    let got = try pool.consume(named: named)
                    #expect(whole)
                    for (id, b) in zip(named, got) { deliver(id, b) }
                    consumed += named.count
                } catch {
                    #expect(!whole)
                    // All or nothing: the named keys held here are discarded (the peer used them).
                    for id in named where model[id] == .available {
                        model[id] = nil
                        discarded += 1
                    }
                }
            case 5:  // the link goes down: nothing is consumed until the pools agree again
                pool.desynchronise()
                synchronised = false
            case 6:  // authentication: the tagging end takes the oldest, the verifying end a named key
                if g.nextBounded(2) == 0 {
                    let expected = available().first
                    let got = pool.takeOldestForAuthentication()
                    #expect(got?.id == expected)
                    if let got { deliver(got.id, got.bits); authentication += 1 }
                } else {
                    let candidates = model.keys.sorted()
                    guard let id = candidates.randomElement(using: &g) else { continue }
                    let got = pool.takeForAuthentication(id)
                    if model[id] == .pending {
                        #expect(got == nil, "a pending key was handed out")
                    } else {
                        #expect(got != nil)
                        if let got { deliver(id, got); authentication += 1 }
                    }
                }
            case 7:  // synchronise with a peer that holds a random subset
                let held = model.keys.sorted()
                let peer = Set(held.filter { _ in g.nextBounded(8) != 0 } + [kid(2_000_000 + step)])
                let (removed, _) = pool.synchronise(peerHolds: peer)
                #expect(removed == held.filter { !peer.contains($0) }.count)
                for id in held where !peer.contains(id) { model[id] = nil }
                for id in held.sorted() where peer.contains(id) && model[id] == .pending {
                    model[id] = .available
                    order.append(id)
                }
                orphans += removed
                synchronised = true
            case 8:  // crash and reload from disk
                flush()
                prior.add(pool.counters)
                pool = KeyPool(configuration: config, restoring: disk.map { ($0.id, bits[$0.id]!, $0.pending) })
                #expect(!pool.isSynchronised)
                #expect(throws: KeyPool.Failure.notSynchronised) { _ = try pool.consume(count: 1) }
                _ = pool.synchronise(peerHolds: Set(model.keys))
                synchronised = true
                #expect(pool.counters.orphansRemoved == 0)
                // The reference after a reload and a synchronisation with a peer that holds the
                // same keys: disk order, pending keys confirmed (sorted).
                for id in model.keys { model[id] = .available }
                order = disk.filter { !$0.pending }.map(\.id) + disk.filter(\.pending).map(\.id).sorted()
                #expect(pool.heldKeys == model.count)
            default:  // nothing happens
                continue
            }
            flush()
            // Invariants after every step.
            #expect(pool.isSynchronised == synchronised)
            #expect(pool.heldKeys == model.count)
            #expect(pool.availableKeys == available().count)
            #expect(pool.availableIDs == available())
            #expect(pool.pendingKeys == model.values.filter { $0 == .pending }.count)
            #expect(pool.heldKeys <= config.maxKeyCount)
            #expect(Set(disk.map(\.id)) == Set(model.keys), "disk and pool disagree")
            var total = prior
            total.add(pool.counters)
            #expect(total.consumed == UInt64(consumed))
            #expect(total.discarded == UInt64(discarded))
            #expect(total.dropped == UInt64(dropped))
            #expect(total.authenticationTaken == UInt64(authentication))
            #expect(total.orphansRemoved == UInt64(orphans))
            // Nothing is lost: every deposit is held, consumed, discarded by a failed relay,
            // used for authentication, synchronised away or counted as dropped.
            #expect(Int(total.deposited) == model.count + consumed + discarded + authentication + orphans)
        }
    }

    @Test func duplicateKeyIDsAreRefused() throws {
        var pool = KeyPool()
        try pool.deposit([(kid(1), BitVector(count: 8))], pending: false)
        #expect(throws: KeyPool.Failure.duplicateKey(kid(1))) { try pool.deposit([(kid(1), BitVector(count: 8))], pending: true) }
    }

    @Test func keyIDsRoundTripAsUUIDs() {
        var g = Xoshiro256(seed: 7)
        for _ in 0..<100 {
            let id = KeyID(randomHigh: g.next(), randomLow: g.next())
            #expect(KeyID(uuidString: id.uuidString) == id)
            #expect(KeyID(uuidString: id.uuidString.uppercased()) == id)
            #expect(KeyID(bytes: id.bytes) == id)
            #expect(Array(id.uuidString)[14] == "4")
        }
        #expect(KeyID(uuidString: "not-a-uuid") == nil)
        #expect(KeyID(uuidString: "0123456789abcdef0123456789abcdef0123") == nil)
        #expect(KeyID(uuidString: "01234567-89ab-cdef-0123-456789abcdeg") == nil)
    }
}

extension KeyPool.Counters {
    mutating func add(_ o: KeyPool.Counters) {
        deposited += o.deposited; dropped += o.dropped; consumed += o.consumed; consumedBits += o.consumedBits
        discarded += o.discarded; authenticationTaken += o.authenticationTaken
        authenticationBits += o.authenticationBits; orphansRemoved += o.orphansRemoved
    }
}

@Suite struct KeyPoolCompactionTests {
    @Test func orderSurvivesQueueCompaction() throws {
        var pool = KeyPool(configuration: .init(maxKeyCount: 50_000, authenticationReserve: 10))
        try pool.deposit((0..<20_000).map { (kid($0), BitVector(count: 64)) }, pending: false)
        _ = pool.synchronise(peerHolds: Set((0..<20_000).map(kid)))
        // The first 10 are the authentication reserve. Consume the next 12,000 (past the
        // compaction threshold), then a key the peer names from further on.
        let first = try pool.consume(count: 12_000)
        #expect(first.first?.id == kid(10) && first.last?.id == kid(12_009))
        _ = try pool.consume(named: [kid(12_011)])
        // Next: the oldest available keys after the reserve, skipping the one taken by name.
        let next = try pool.consume(count: 3)
        #expect(next.map(\.id) == [kid(12_010), kid(12_012), kid(12_013)])
        let rest = try pool.consume(count: pool.availableKeys - 10)
        #expect(rest.last?.id == kid(19_999))
        #expect(pool.availableKeys == 10)
        #expect(throws: KeyPool.Failure.self) { _ = try pool.consume(count: 1) }
        // The authentication reserve, oldest first.
        let auth = (0..<10).compactMap { _ in pool.takeOldestForAuthentication()?.id }
        #expect(auth == (0..<10).map(kid))
        #expect(pool.takeOldestForAuthentication() == nil)
        #expect(pool.counters.consumed == 19_990)
    }
}
