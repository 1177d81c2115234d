import CQKDKernels
import QKDCore

/// Privacy amplification by Toeplitz hashing, a 2-universal family (Carter & Wegman, JCSS 18,
/// 143, 1979; Krawczyk, CRYPTO 1994): the m×n Toeplitz matrix T with T[i][j] = s[i − j + n − 1]
/// is given by n + m − 1 seed bits s, and the output is y = T·x over GF(2). By the leftover hash
/// lemma (Impagliazzo, Levin, Luby 1989) y is ε-close to uniform for an eavesdropper holding at
/// most n − m − 2 log2(1/ε) bits of information about x.
///
/// Fast path: a Karatsuba-style Toeplitz-matrix–vector product (Fan & Hasan, IEEE Trans.
/// Computers 56(2), 2007): with T = [[A, B], [C, A]] in h×h Toeplitz blocks, y0 = A(x0+x1) +
/// (A+B)x1 and y1 = A(x0+x1) + (A+C)x0, three half-size products computing only the outputs
/// needed; an m×n matrix is cut into ⌈n/M⌉ square M×M blocks, M = 512·2^k ≥ m. The
/// recursion stops at 512-bit blocks (VPCLMULQDQ: four 64×64 carry-less products per AVX-512
/// instruction, 16 instructions per block) or 256-bit blocks (PCLMULQDQ, or a portable
/// fallback), which compute only the diagonals of the product that reach the output
/// (CQKDKernels; the CPU's best is chosen at run time).
public enum ToeplitzHash {
    /// The base case of the product.
    public enum Kernel: Int32, Sendable, CaseIterable, CustomStringConvertible {
        case portable = 0, pclmul = 1, vpclmul = 2

        /// The fastest this CPU runs (the one `apply` uses by default).
        public static var best: Kernel { Kernel(rawValue: qkd_toeplitz_best_kernel()) ?? .portable }
        /// Every kernel this CPU runs.
        public static var available: [Kernel] { allCases.filter { $0.rawValue <= best.rawValue } }
        public var description: String { ["portable", "pclmul", "vpclmul"][Int(rawValue)] }
    }

    /// y = T·x with T given by `seed` (exactly n + m − 1 bits).
    public static func apply(seed: BitVector, input x: BitVector, outputBits m: Int, kernel: Kernel = .best) -> BitVector {
        let n = x.count
        precondition(m >= 0 && m <= n, "output length \(m) outside 0...\(n)")
        precondition(seed.count == n + m - 1 || m == 0, "seed must have n + m − 1 = \(n + m - 1) bits, has \(seed.count)")
        precondition(kernel.rawValue <= Kernel.best.rawValue, "this CPU has no \(kernel) kernel")
        guard m > 0 else { return BitVector() }
        var y = [UInt64](repeating: 0, count: (m + 63) / 64)
        let rc = seed.words.withUnsafeBufferPointer { s in
            x.words.withUnsafeBufferPointer { xv in
                y.withUnsafeMutableBufferPointer { out in
                    qkd_toeplitz_multiply_with(kernel.rawValue, s.baseAddress, n, m, xv.baseAddress, out.baseAddress)
                }
            }
        }
        precondition(rc == 0, "out of memory in Toeplitz hashing of \(n) bits")
        return BitVector(words: y, count: m)
    }

    /// The same product as one full polynomial product S·X and a slice (the previous method;
    /// kept as a second, independent implementation for tests and benchmarks).
    public static func applyByPolynomialProduct(seed: BitVector, input x: BitVector, outputBits m: Int) -> BitVector {
        let n = x.count
        guard m > 0 else { return BitVector() }
        var product = [UInt64](repeating: 0, count: seed.words.count + x.words.count)
        seed.words.withUnsafeBufferPointer { s in
            x.words.withUnsafeBufferPointer { xv in
                product.withUnsafeMutableBufferPointer { out in
                    qkd_gf2_multiply(s.baseAddress, s.count, xv.baseAddress, xv.count, out.baseAddress)
                }
            }
        }
        return extract(product, from: n - 1, count: m)
    }

    /// The same product computed bit by bit from the matrix definition (for tests).
    public static func naive(seed: BitVector, input x: BitVector, outputBits m: Int) -> BitVector {
        let n = x.count
        var y = BitVector(count: m)
        for i in 0..<m {
            var bit: UInt8 = 0
            for j in 0..<n where x[j] != 0 { bit ^= seed[i - j + n - 1] }
            y[i] = bit
        }
        return y
    }

    /// Bits [from, from + count) of a word array.
    static func extract(_ words: [UInt64], from: Int, count: Int) -> BitVector {
        var out = [UInt64](repeating: 0, count: (count + 63) / 64)
        let shift = UInt64(from & 63)
        let base = from >> 6
        for w in out.indices {
            let lo = base + w < words.count ? words[base + w] : 0
            let hi = base + w + 1 < words.count ? words[base + w + 1] : 0
            out[w] = shift == 0 ? lo : (lo >> shift) | (hi << (64 - shift))
        }
        return BitVector(words: out, count: count)
    }
}
