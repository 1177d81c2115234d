import QKDCore
import QKDPostProcessing
import Testing

func randomBits(_ n: Int, _ g: inout Xoshiro256) -> BitVector {
    var words = [UInt64](repeating: 0, count: (n + 63) / 64)
    for i in words.indices { words[i] = g.next() }
    return BitVector(words: words, count: n)
}

@Suite struct ToeplitzTests {
    @Test func fastEqualsNaiveOverManySizesAndSeeds() {
        var g = Xoshiro256(seed: 2024)
        // Sizes across the schoolbook/Karatsuba threshold (24 words) and odd bit counts.
        for (n, m) in [(1, 1), (63, 10), (64, 64), (65, 1), (200, 77), (512, 512), (513, 511), (1000, 333), (1537, 1536),
                       (3000, 1000), (5000, 2500), (5000, 5000), (4100, 17)] {
            for _ in 0..<3 {
                let x = randomBits(n, &g)
                let seed = randomBits(n + m - 1, &g)
                let fast = ToeplitzHash.apply(seed: seed, input: x, outputBits: m)
                #expect(fast == ToeplitzHash.naive(seed: seed, input: x, outputBits: m), "n \(n), m \(m)")
                #expect(fast == ToeplitzHash.applyByPolynomialProduct(seed: seed, input: x, outputBits: m), "n \(n), m \(m)")
                #expect(fast.count == m)
            }
        }
    }

    @Test func isLinearInTheInput() {
        var g = Xoshiro256(seed: 5)
        let n = 20_000, m = 7_000
        let seed = randomBits(n + m - 1, &g)
        let a = randomBits(n, &g), b = randomBits(n, &g)
        var sum = a
        for i in 0..<n where b[i] != 0 { sum.flip(i) }
        let ya = ToeplitzHash.apply(seed: seed, input: a, outputBits: m)
        let yb = ToeplitzHash.apply(seed: seed, input: b, outputBits: m)
        var ysum = ya
        for i in 0..<m where yb[i] != 0 { ysum.flip(i) }
        #expect(ToeplitzHash.apply(seed: seed, input: sum, outputBits: m) == ysum)
        // Output bits of a random input are balanced.
        let weight = Double(ya.weight) / Double(m)
        #expect(abs(weight - 0.5) < 0.03)
    }
}

@Suite struct ToeplitzLargeTests {
    @Test func bothFastMethodsAgreeOnLargeBlocks() {
        var g = Xoshiro256(seed: 77)
        for (n, m) in [(200_000, 100_000), (262_144, 30_000), (100_003, 99_999)] {
            let x = randomBits(n, &g)
            let seed = randomBits(n + m - 1, &g)
            #expect(ToeplitzHash.apply(seed: seed, input: x, outputBits: m)
                    == ToeplitzHash.applyByPolynomialProduct(seed: seed, input: x, outputBits: m), "n \(n), m \(m)")
        }
    }
}
