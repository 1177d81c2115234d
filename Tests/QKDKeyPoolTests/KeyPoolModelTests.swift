import QKDCore
import QKDKeyPool
import Testing

/// Model-based test: random operations against a plain reference model, many seeds.
@Suite struct KeyPoolModelTests {
    enum RefState: Equatable { case available, reserved(String, UInt64) }

    @Test(arguments: Array(0..<40) as [UInt64])
    func randomOperationsAgreeWithTheReferenceModel(seed: UInt64) throws {
        var g = Xoshiro256(seed: seed)
        let config = KeyPool.Configuration(maxKeyCount: 50 + Int(g.nextBounded(100)), authenticationReserve: Int(g.nextBounded(10)),
                                           reservationTTLMs: 100)
        var pool = KeyPool(configuration: config)
        var model: [String: RefState] = [:]
        var order: [String] = []              // the order keys became available (release: to the end)
        var delivered = Set<String>()
        var dropped = 0, expired = 0, consumed = 0
        var nowMs: UInt64 = 0
        var next = 0
        let owners = ["SAE-A", "SAE-B", "relay-1"]

        func availableCount() -> Int { model.values.filter { $0 == .available }.count }

        for _ in 0..<600 {
            nowMs += g.nextBounded(20)
            let now = Instant(nanoseconds: nowMs * 1_000_000)
            switch g.nextBounded(6) {
            case 0, 1:  // deposit a batch
                let n = Int(g.nextBounded(8)) + 1
                let batch = (0..<n).map { _ -> (id: String, bits: BitVector) in
                    next += 1
                    return ("k\(next)", BitVector(words: [g.next(), g.next(), g.next(), g.next()], count: 256))
                }
                let d = try pool.deposit(batch)
                var accepted = 0
                for (id, _) in batch where model.count < config.maxKeyCount {
                    model[id] = .available
                    order.append(id)
                    accepted += 1
                }
                #expect(d == n - accepted)
                dropped += d
            case 2:  // reserve
                let n = Int(g.nextBounded(5)) + 1
                let owner = owners[Int(g.nextBounded(3))]
                let spare = availableCount() - config.authenticationReserve
                do {
                    let ids = try pool.reserve(count: n, for: owner, at: now)
                    #expect(n <= spare)
                    // The oldest available keys, in order.
                    let expected = Array(order.filter { model[$0] == .available }.prefix(n))
                    #expect(ids == expected)
                    for id in ids { model[id] = .reserved(owner, nowMs + 100) }
                } catch {
                    #expect(n > spare, "refused \(n) with \(spare) spare")
                }
                #expect(availableCount() >= min(config.authenticationReserve, availableCount()))
            case 3:  // take a reserved key (sometimes by the wrong owner)
                let reserved = model.filter { if case .reserved = $0.value { true } else { false } }.keys.sorted()
                guard let id = reserved.randomElement(using: &g) else { continue }
                guard case .reserved(let owner, _) = model[id]! else { continue }
                let asker = g.nextBounded(4) == 0 ? "intruder" : owner
                do {
                    let key = try pool.take(id, by: asker)
                    #expect(asker == owner)
                    #expect(key.count == 256)
                    #expect(!delivered.contains(id), "key \(id) delivered twice")
                    delivered.insert(id)
                    model[id] = nil
                    consumed += 1
                } catch {
                    #expect(asker != owner)
                }
            case 4:  // release
                let reserved = model.filter { if case .reserved = $0.value { true } else { false } }.keys.sorted()
                guard let id = reserved.randomElement(using: &g), case .reserved(let owner, _) = model[id]! else { continue }
                try pool.release(id, by: owner)
                model[id] = .available
                order.removeAll { $0 == id }
                order.append(id)
            default:  // expire
                let gone = pool.expire(at: now)
                let expected = model.filter { if case .reserved(_, let d) = $0.value { d <= nowMs } else { false } }.keys.sorted()
                #expect(gone == expected)
                for id in gone { model[id] = nil }
                expired += gone.count
            }
            // Invariants after every step.
            #expect(pool.heldKeys == model.count)
            #expect(pool.availableKeys == availableCount())
            #expect(pool.heldKeys <= config.maxKeyCount)
            #expect(pool.counters.consumed == UInt64(consumed))
            #expect(pool.counters.expired == UInt64(expired))
            #expect(pool.counters.dropped == UInt64(dropped))
            // Nothing is lost: every deposit is held, consumed, expired or counted as dropped.
            #expect(Int(pool.counters.deposited) == model.count + consumed + expired + Int(pool.counters.authenticationTaken))
        }
        // The authentication reserve is the pool's own: applications could never take it.
        let before = pool.availableKeys
        #expect(throws: KeyPool.Failure.self) {
            _ = try pool.reserve(count: max(1, before - config.authenticationReserve + 1), for: "SAE-A", at: Instant(nanoseconds: 0))
        }
        if before > 0 { #expect(pool.takeForAuthentication() != nil) }
    }

    @Test func duplicateKeyIDsAreRefused() throws {
        var pool = KeyPool()
        try pool.deposit([("a", BitVector(count: 8))])
        #expect(throws: KeyPool.Failure.duplicateKey("a")) { try pool.deposit([("a", BitVector(count: 8))]) }
    }
}

@Suite struct KeyPoolCompactionTests {
    @Test func orderSurvivesQueueCompaction() throws {
        var pool = KeyPool(configuration: .init(maxKeyCount: 50_000, authenticationReserve: 10, reservationTTLMs: 1000))
        try pool.deposit((0..<20_000).map { ("k\($0)", BitVector(count: 64)) })
        let t = Instant(nanoseconds: 0)
        // Consume the first 12,000 (past the compaction threshold), release one of them back.
        let first = try pool.reserve(count: 12_000, for: "app", at: t)
        #expect(first.first == "k0" && first.last == "k11999")
        for id in first.dropLast() { _ = try pool.take(id, by: "app") }
        try pool.release("k11999", by: "app")
        // Next: the oldest available keys (k12000…), the released key comes last.
        let next = try pool.reserve(count: 3, for: "app", at: t)
        #expect(next == ["k12000", "k12001", "k12002"])
        let rest = try pool.reserve(count: pool.availableKeys - 10, for: "app", at: t)
        #expect(rest.last == "k19990")
        #expect(pool.availableKeys == 10)
        #expect(throws: KeyPool.Failure.self) { _ = try pool.reserve(count: 1, for: "app", at: t) }
        // The authentication reserve, oldest first: k19991 … k19999, then the released k11999.
        let auth = (0..<10).compactMap { _ in pool.takeForAuthentication()?.id }
        #expect(auth == (19_991...19_999).map { "k\($0)" } + ["k11999"])
        #expect(pool.takeForAuthentication() == nil)
        #expect(pool.counters.consumed == 11_999)
    }
}
