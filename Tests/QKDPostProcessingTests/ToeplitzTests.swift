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
        // Sizes across the base-case blocks (256 and 512 bits), the recursion, several chunks,
        // and odd bit counts; every base case this CPU has.
        for (n, m) in [(1, 1), (63, 10), (64, 64), (65, 1), (200, 77), (512, 512), (513, 511), (1000, 333), (1537, 1536),
                       (3000, 1000), (5000, 2500), (5000, 5000), (4100, 17), (2048, 1024), (4097, 2049)] {
            for _ in 0..<3 {
                let x = randomBits(n, &g)
                let seed = randomBits(n + m - 1, &g)
                let naive = ToeplitzHash.naive(seed: seed, input: x, outputBits: m)
                #expect(naive == ToeplitzHash.applyByPolynomialProduct(seed: seed, input: x, outputBits: m), "n \(n), m \(m)")
                for kernel in ToeplitzHash.Kernel.available {
                    let fast = ToeplitzHash.apply(seed: seed, input: x, outputBits: m, kernel: kernel)
                    #expect(fast == naive, "n \(n), m \(m), kernel \(kernel)")
                    #expect(fast.count == m)
                }
            }
        }
    }

    @Test func bitsBeyondTheSeedAndInputAreIgnored() {
        // Words carry garbage past n + m − 1 seed bits and n input bits: the result must not see it.
        var g = Xoshiro256(seed: 99)
        for (n, m) in [(700, 300), (1025, 1000), (3333, 2222)] {
            let x = randomBits(n, &g), seed = randomBits(n + m - 1, &g)
            var dirtyX = x.words, dirtySeed = seed.words
            dirtyX[dirtyX.count - 1] |= ~0 << UInt64(n & 63 == 0 ? 63 : n & 63)
            dirtySeed[dirtySeed.count - 1] |= ~0 << UInt64((n + m - 1) & 63 == 0 ? 63 : (n + m - 1) & 63)
            let clean = ToeplitzHash.apply(seed: seed, input: x, outputBits: m)
            for kernel in ToeplitzHash.Kernel.available {
                let dirty = ToeplitzHash.apply(seed: BitVector(words: dirtySeed, count: n + m - 1),
                                               input: BitVector(words: dirtyX, count: n), outputBits: m, kernel: kernel)
                #expect(dirty == clean, "n \(n), m \(m), kernel \(kernel)")
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
            let reference = ToeplitzHash.applyByPolynomialProduct(seed: seed, input: x, outputBits: m)
            for kernel in ToeplitzHash.Kernel.available {
                #expect(ToeplitzHash.apply(seed: seed, input: x, outputBits: m, kernel: kernel) == reference, "n \(n), m \(m), kernel \(kernel)")
            }
        }
    }
}
