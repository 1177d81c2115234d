import QKDCore
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing

/// Runs Cascade between the two instances through the wire codecs.
func reconcile(alice aliceKey: BitVector, bob bobKey: BitVector, qber: Double, seed: UInt64)
    throws -> (bob: CascadeBob, alice: CascadeAlice)
{
    var perms = CascadePermutations(seeds: SeedTree(root: seed))
    let layout = CascadeLayout(length: aliceKey.count, qber: qber, permutations: &perms)
    var alice = CascadeAlice(block: 1, key: aliceKey, layout: layout)
    var bob = CascadeBob(block: 1, key: bobKey, layout: layout)
    var request: CascadeRequest? = bob.start()
    while let r = request {
        let reply = try CascadeReply.decode(alice.answer(CascadeRequest.decode(r.encoded())).encoded())
        request = try bob.received(reply)
    }
    return (bob, alice)
}

/// A key pair with errors placed independently at rate `qber`.
func noisyPair(_ n: Int, qber: Double, _ g: inout Xoshiro256) -> (BitVector, BitVector, Int) {
    let a = randomBits(n, &g)
    var b = a
    var errors = 0
    for i in 0..<n where g.nextUnitDouble() < qber {
        b.flip(i)
        errors += 1
    }
    return (a, b, errors)
}

@Suite struct CascadeTests {
    @Test func correctsEveryBlockUpToEightPercentOverManySeeds() throws {
        var failures = 0, runs = 0
        for qber in [0.005, 0.01, 0.02, 0.04, 0.06, 0.08] {
            for seed in 0..<12 {
                var g = Xoshiro256(seed: UInt64(seed) &* 7919 &+ UInt64(qber * 1e4))
                let (a, b, _) = noisyPair(20_000, qber: qber, &g)
                let aliceCopy = a
                let (bob, alice) = try reconcile(alice: a, bob: b, qber: qber, seed: UInt64(seed))
                runs += 1
                if bob.key != a {
                    failures += 1
                    // Never silently kept: verification's hash catches it.
                    #expect(PolynomialHash.hash(bob.key, key: 99) != PolynomialHash.hash(a, key: 99))
                }
                #expect(a == aliceCopy, "Alice's bits must never change")
                #expect(bob.leakedBits == alice.leakedBits, "leak counted at both ends: \(bob.leakedBits) vs \(alice.leakedBits)")
                #expect(bob.finished)
            }
        }
        // Cascade leaves a residual frame error rate; with 14 passes it is rare.
        #expect(failures <= runs / 50, "\(failures) of \(runs) blocks not corrected")
    }

    @Test(arguments: [0.01, 0.02, 0.03, 0.05])
    func efficiencyWithinTheTarget(qber: Double) throws {
        var g = Xoshiro256(seed: UInt64(qber * 1000))
        let n = 1 << 18
        var ratios: [Double] = []
        for seed in 0..<3 {
            let (a, b, errors) = noisyPair(n, qber: qber, &g)
            let (bob, _) = try reconcile(alice: a, bob: b, qber: qber, seed: UInt64(seed))
            #expect(bob.key == a)
            #expect(bob.corrections == errors)
            let actual = Double(errors) / Double(n)
            ratios.append(Double(bob.leakedBits) / (Double(n) * binaryEntropy(actual)))
        }
        let f = ratios.reduce(0, +) / Double(ratios.count)
        #expect(f <= 1.08, "QBER \(qber): efficiency \(f)")
        #expect(f >= 1.0, "QBER \(qber): efficiency \(f) below the Shannon limit is impossible")
    }

    @Test func hostileRequestsAreRefused() {
        var perms = CascadePermutations(seeds: SeedTree(root: 1))
        let layout = CascadeLayout(length: 1000, qber: 0.02, permutations: &perms)
        var alice = CascadeAlice(block: 3, key: BitVector(count: 1000), layout: layout)
        #expect(throws: ProtocolError.self) { try alice.answer(CascadeRequest(block: 3, queries: [CascadeQuery(pass: 20, start: 0, length: 1)])) }
        #expect(throws: ProtocolError.self) { try alice.answer(CascadeRequest(block: 3, queries: [CascadeQuery(pass: 1, start: 990, length: 20)])) }
        #expect(throws: ProtocolError.self) { try alice.answer(CascadeRequest(block: 4, queries: [])) }
        var bob = CascadeBob(block: 3, key: BitVector(count: 1000), layout: layout)
        _ = bob.start()
        #expect(throws: ProtocolError.self) { _ = try bob.received(CascadeReply(block: 3, parities: [0])) }
        #expect(throws: WireError.self) { try CascadeRequest.decode([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5]) }
    }
}

@Suite struct CascadeHostileAnswersTests {
    /// Alice's answers replaced by random bits: Bob must still finish, within his bounds.
    @Test func randomParitiesCannotMakeBobRunForever() throws {
        var g = Xoshiro256(seed: 31)
        for seed in 0..<5 {
            let (a, b, _) = noisyPair(50_000, qber: 0.02, &g)
            var perms = CascadePermutations(seeds: SeedTree(root: UInt64(seed)))
            let layout = CascadeLayout(length: a.count, qber: 0.02, permutations: &perms)
            var alice = CascadeAlice(block: 1, key: a, layout: layout)
            var bob = CascadeBob(block: 1, key: b, layout: layout)
            var request: CascadeRequest? = bob.start()
            var trips = 0
            while let r = request {
                var reply = try alice.answer(r)
                reply.parities = reply.parities.map { _ in UInt8(g.next() & 1) }
                request = try bob.received(reply)
                trips += 1
                #expect(trips <= 100_001)
            }
            #expect(bob.finished)
            #expect(bob.corrections <= 50_000 / 4 + 64)
        }
    }
}
