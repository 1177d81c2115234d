import QKDCore
import QKDKeyPool
import Testing

func kid(_ n: Int) -> KeyID { KeyID(high: 0x1111, low: UInt64(n)) }

/// Model-based test: random operations against a plain reference model, many seeds, with
/// crash-and-reload from what the journal wrote to a simulated disk.
@Suite struct KeyPoolModelTests {
    enum RefState: Equatable { case pending, available, reserved(String, UInt64) }

    @Test(arguments: Array(0..<40) as [UInt64])
    func randomOperationsAgreeWithTheReferenceModel(seed: UInt64) throws {
        var g = Xoshiro256(seed: seed)
        let config = KeyPool.Configuration(maxKeyCount: 50 + Int(g.nextBounded(100)), authenticationReserve: Int(g.nextBounded(10)),
                                           reservationTTLMs: 100)
        var pool = KeyPool(configuration: config)
        var model: [KeyID: RefState] = [:]
        var bits: [KeyID: BitVector] = [:]
        var order: [KeyID] = []             // the order keys became available (release: to the end)
        var disk: [(id: KeyID, pending: Bool)] = []  // the journal applied, in insertion order
        var delivered = Set<KeyID>()
        var dropped = 0, expired = 0, consumed = 0, authentication = 0, orphans = 0
        var prior = KeyPool.Counters()      // counters of the pools before each reload
        var nowMs: UInt64 = 0
        var next = 0
        let owners = ["SAE-A", "SAE-B", "relay-1"]

        func available() -> [KeyID] { order.filter { model[$0] == .available } }
        func reservedIDs() -> [KeyID] { model.filter { if case .reserved = $0.value { true } else { false } }.keys.sorted() }
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
            nowMs += g.nextBounded(20)
            let now = Instant(nanoseconds: nowMs * 1_000_000)
            switch g.nextBounded(11) {
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
            case 3:  // reserve
                let n = Int(g.nextBounded(5)) + 1
                let owner = owners[Int(g.nextBounded(3))]
                let spare = available().count - config.authenticationReserve
                do {
                    let ids = try pool.reserve(count: n, for: owner, at: now)
                    #expect(n <= spare)
                    // The oldest available keys after the authentication reserve, in order.
                    #expect(ids == Array(available().dropFirst(config.authenticationReserve).prefix(n)))
                    for id in ids { model[id] = .reserved(owner, nowMs + 100) }
                } catch {
                    #expect(n > spare || !pool.isSynchronised, "refused \(n) with \(spare) spare")
                }
            case 4:  // take a reserved key (sometimes by the wrong owner)
                guard let id = reservedIDs().randomElement(using: &g), case .reserved(let owner, _) = model[id]! else { continue }
                let asker = g.nextBounded(4) == 0 ? "intruder" : owner
                do {
                    let key = try pool.take(id, by: asker)
                    #expect(asker == owner)
                    deliver(id, key)
                    consumed += 1
                } catch {
                    #expect(asker != owner)
                }
            case 5:  // release
                guard let id = reservedIDs().randomElement(using: &g), case .reserved(let owner, _) = model[id]! else { continue }
                try pool.release(id, by: owner)
                model[id] = .available
                order.removeAll { $0 == id }
                order.append(id)
            case 6:  // expire
                let gone = pool.expire(at: now)
                let expected = model.filter { if case .reserved(_, let d) = $0.value { d <= nowMs } else { false } }.keys.sorted()
                #expect(gone == expected)
                for id in gone { model[id] = nil }
                expired += gone.count
            case 7:  // authentication: the tagging end takes the oldest, the verifying end a named key
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
            case 8:  // synchronise with a peer that holds a random subset
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
            case 9:  // crash and reload from disk: reservations are forgotten (never taken, so safe)
                flush()
                prior.add(pool.counters)
                pool = KeyPool(configuration: config, restoring: disk.map { ($0.id, bits[$0.id]!, $0.pending) })
                #expect(!pool.isSynchronised)
                #expect(throws: KeyPool.Failure.notSynchronised) { _ = try pool.reserve(count: 1, for: "SAE-A", at: now) }
                _ = pool.synchronise(peerHolds: Set(model.keys))
                #expect(pool.counters.orphansRemoved == 0)
                // The reference after a reload and a synchronisation with a peer that holds the
                // same keys: disk order, nothing reserved, pending keys confirmed (sorted).
                for id in model.keys { model[id] = .available }
                order = disk.filter { !$0.pending }.map(\.id) + disk.filter(\.pending).map(\.id).sorted()
                #expect(pool.heldKeys == model.count)
            default:  // confirm nothing, expire nothing: time passes
                continue
            }
            flush()
            // Invariants after every step.
            #expect(pool.heldKeys == model.count)
            #expect(pool.availableKeys == available().count)
            #expect(pool.availableIDs == available())
            #expect(pool.pendingKeys == model.values.filter { $0 == .pending }.count)
            #expect(pool.heldKeys <= config.maxKeyCount)
            #expect(Set(disk.map(\.id)) == Set(model.keys), "disk and pool disagree")
            var total = prior
            total.add(pool.counters)
            #expect(total.consumed == UInt64(consumed))
            #expect(total.expired == UInt64(expired))
            #expect(total.dropped == UInt64(dropped))
            #expect(total.authenticationTaken == UInt64(authentication))
            #expect(total.orphansRemoved == UInt64(orphans))
            // Nothing is lost: every deposit is held, consumed, expired, used for authentication,
            // synchronised away or counted as dropped.
            #expect(Int(total.deposited) == model.count + consumed + expired + authentication + orphans)
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
        expired += o.expired; released += o.released; authenticationTaken += o.authenticationTaken
        authenticationBits += o.authenticationBits; orphansRemoved += o.orphansRemoved
    }
}

@Suite struct KeyPoolCompactionTests {
    @Test func orderSurvivesQueueCompaction() throws {
        var pool = KeyPool(configuration: .init(maxKeyCount: 50_000, authenticationReserve: 10, reservationTTLMs: 1000))
        try pool.deposit((0..<20_000).map { (kid($0), BitVector(count: 64)) }, pending: false)
        _ = pool.synchronise(peerHolds: Set((0..<20_000).map(kid)))
        let t = Instant(nanoseconds: 0)
        // The first 10 are the authentication reserve. Consume the next 12,000 (past the
        // compaction threshold), release one of them back.
        let first = try pool.reserve(count: 12_000, for: "app", at: t)
        #expect(first.first == kid(10) && first.last == kid(12_009))
        for id in first.dropLast() { _ = try pool.take(id, by: "app") }
        try pool.release(kid(12_009), by: "app")
        // Next: the oldest available keys after the reserve; the released key comes last.
        let next = try pool.reserve(count: 3, for: "app", at: t)
        #expect(next == [kid(12_010), kid(12_011), kid(12_012)])
        let rest = try pool.reserve(count: pool.availableKeys - 10, for: "app", at: t)
        #expect(rest.last == kid(12_009))
        #expect(pool.availableKeys == 10)
        #expect(throws: KeyPool.Failure.self) { _ = try pool.reserve(count: 1, for: "app", at: t) }
        // The authentication reserve, oldest first.
        let auth = (0..<10).compactMap { _ in pool.takeOldestForAuthentication()?.id }
        #expect(auth == (0..<10).map(kid))
        #expect(pool.takeOldestForAuthentication() == nil)
        #expect(pool.counters.consumed == 11_999)
    }
}
