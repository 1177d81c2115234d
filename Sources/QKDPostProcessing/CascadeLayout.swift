import QKDCore
#if canImport(Glibc)
import Glibc
#endif

/// Block sizes and per-pass bit orders of one Cascade run, identical at both ends.
///
/// Block sizes follow "Cascade opt. (8)" of Martinez-Mateo, Pacher, Peev, Ciurana, Martin,
/// "Demystifying the information reconciliation protocol Cascade", QIC 15 (2015),
/// arXiv:1407.3257: with α = log2(1/p) − 0.5, k1 = 2^⌈α⌉, k2 = 2^⌈(α + 12)/2⌉, k3 = 4096,
/// k_i = n/2 afterwards, 14 passes. Pass 1 takes the bits in order; every later pass in a
/// pseudo-random order from the project's own generator.
public struct CascadeLayout: Sendable {
    public let length: Int
    public let blockSizes: [Int]
    /// perms[p][i] = original index of the i-th bit of pass p (empty for pass 0: identity,
    /// and for two-block passes, whose order is regenerated only if a search needs it).
    let perms: [[UInt32]]
    /// For two-block passes: the master permutation their order is filtered from on demand.
    let masters: [[UInt32]]
    /// For passes of more than two blocks: the inverse of the order (position of each
    /// original bit), which Bob needs to cascade corrections; cached with the order. Empty
    /// when the layout was made without (Alice never needs them).
    let inverses: [[UInt32]]
    /// For passes of at most two blocks: the original indices of the first block, as a mask,
    /// so its parity is one AND-and-popcount over the key (no reordering needed).
    let firstBlockMasks: [[UInt64]?]

    public static func blockSizes(qber: Double, length n: Int, passes: Int = 14) -> [Int] {
        let p = min(max(qber, 1e-5), 0.25)
        let alpha = log2(1 / p) - 0.5
        return (0..<passes).map { i in
            let k: Double
            switch i {
            case 0: k = pow(2, ceil(alpha))
            case 1: k = pow(2, ceil((alpha + 12) / 2))
            case 2: k = 4096
            default: k = Double(n / 2)
            }
            return max(1, min(n, Int(k)))
        }
    }

    public init(length n: Int, qber: Double, permutations: inout CascadePermutations, passes: Int = 14, withInverses: Bool = true) {
        length = n
        blockSizes = CascadeLayout.blockSizes(qber: qber, length: n, passes: passes)
        var perms: [[UInt32]] = [[]]
        var masks: [[UInt64]?] = [nil]
        var masters: [[UInt32]] = [[]]
        var inverses: [[UInt32]] = [[]]
        for pass in 1..<passes {
            let twoBlocks = blockSizes[pass] * 2 >= n
            let (order, mask, inverse) = permutations.permutation(pass: pass, length: n, firstBlock: twoBlocks ? blockSizes[pass] : nil,
                                                                  inverse: withInverses)
            perms.append(twoBlocks ? [] : order)
            masks.append(mask)
            inverses.append(inverse)
            masters.append(twoBlocks ? permutations.master(pass: pass, length: n) : [])
        }
        self.perms = perms
        self.inverses = inverses
        firstBlockMasks = masks
        self.masters = masters
    }

    /// The order of pass `pass` (filtered from its master for two-block passes: O(n), no shuffle).
    func order(_ pass: Int) -> [UInt32] {
        if !perms[pass].isEmpty || pass == 0 { return perms[pass] }
        let master = masters[pass]
        if master.count == length { return master }
        var out: [UInt32] = []
        out.reserveCapacity(length)
        for j in master where j < UInt32(length) { out.append(j) }
        return out
    }

    /// Whether pass `pass` has at most two blocks (its parities come from masks).
    func usesMask(_ pass: Int) -> Bool { pass > 0 && firstBlockMasks[pass] != nil }

    /// Parity of the first block of a two-block pass, straight from the key.
    func firstBlockParity(_ key: BitVector, pass: Int) -> UInt8 {
        let mask = firstBlockMasks[pass]!
        var acc = 0
        key.words.withUnsafeBufferPointer { k in
            mask.withUnsafeBufferPointer { m in
                for w in 0..<m.count { acc &+= (k[w] & m[w]).nonzeroBitCount }
            }
        }
        return UInt8(acc & 1)
    }

    /// Whether original bit `j` lies in the first block of a two-block pass.
    func inFirstBlock(_ j: Int, pass: Int) -> Bool {
        (firstBlockMasks[pass]![j >> 6] >> UInt64(j & 63)) & 1 == 1
    }

    /// The inverse of an order (built only where a search needs positions).
    func inverse(of order: [UInt32]) -> [UInt32] { CascadeLayout.inverse(of: order) }

    static func inverse(of order: [UInt32]) -> [UInt32] {
        var inv = [UInt32](repeating: 0, count: order.count)
        order.withUnsafeBufferPointer { p in
            inv.withUnsafeMutableBufferPointer { out in
                for i in 0..<p.count { out[Int(p[i])] = UInt32(i) }
            }
        }
        return inv
    }

    public var passes: Int { blockSizes.count }

    func blockCount(_ pass: Int) -> Int { (length + blockSizes[pass] - 1) / blockSizes[pass] }

    /// The bits of `key` in pass `pass`'s order, packed.
    func permuted(_ key: BitVector, pass: Int, order given: [UInt32]? = nil) -> [UInt64] {
        if pass == 0 { return key.words }
        var out = [UInt64](repeating: 0, count: (length + 63) / 64)
        let order = given ?? self.order(pass)
        key.words.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                order.withUnsafeBufferPointer { ord in
                    var i = 0
                    while i < length {
                        var word: UInt64 = 0
                        let end = min(64, length - i)
                        for b in 0..<end {
                            let j = Int(ord[i + b])
                            word |= ((src[j >> 6] >> UInt64(j & 63)) & 1) << UInt64(b)
                        }
                        dst[i >> 6] = word
                        i += 64
                    }
                }
            }
        }
        return out
    }


    /// Parity of packed bits [lo, hi).
    @inline(__always)
    static func parity(_ words: [UInt64], _ lo: Int, _ hi: Int) -> UInt8 {
        guard hi > lo else { return 0 }
        let wlo = lo >> 6, whi = (hi - 1) >> 6
        let loBit = UInt64(lo & 63), hiBits = UInt64((hi - 1) & 63) + 1
        let hiMask: UInt64 = hiBits == 64 ? ~0 : (1 << hiBits) - 1
        var acc: UInt64
        if wlo == whi {
            acc = (words[wlo] & hiMask) >> loBit
        } else {
            acc = words[wlo] >> loBit
            var w = wlo + 1
            while w < whi {
                acc ^= words[w]
                w += 1
            }
            acc ^= words[whi] & hiMask
        }
        return UInt8(acc.nonzeroBitCount & 1)
    }
}

/// Master permutations per pass and power-of-two size, drawn once per link session from the
/// seed tree; a run of length n uses the master of size 2^⌈log2 n⌉ filtered to the indices
/// below n, which is again a uniformly random permutation. Both ends hold equal copies.
public struct CascadePermutations: Sendable {
    let seeds: SeedTree
    /// Whether master permutations are kept between runs (a scratch instance does not).
    let keepMasters: Bool
    private var masters: [Int: [UInt32]] = [:]
    /// The filtered orders and masks of the last length used (blocks often repeat a length).
    private var recent: [Int: (order: [UInt32], mask: [UInt64]?, inverse: [UInt32])] = [:]
    private var recentLength = -1

    public init(seeds: SeedTree, keepMasters: Bool = true) {
        self.seeds = seeds
        self.keepMasters = keepMasters
    }

    /// The master permutation of a pass for blocks of length n (size 2^⌈log2 n⌉), drawn once.
    mutating func master(pass: Int, length n: Int) -> [UInt32] {
        var size = 1
        while size < n { size <<= 1 }
        let key = pass << 40 | size
        if let cached = masters[key] { return cached }
        var master = (0..<size).map { UInt32($0) }
        var g = seeds.stream("cascade/pass/\(pass)/\(size)")
        g.shuffle(&master)
        if keepMasters { masters[key] = master }
        return master
    }

    /// The order of a pass for blocks of length n with, for passes of more than two blocks and
    /// if asked, its inverse; for two-block passes (`firstBlock` given) the mask of the first
    /// block and no order.
    mutating func permutation(pass: Int, length n: Int, firstBlock: Int?, inverse wanted: Bool) -> (order: [UInt32], mask: [UInt64]?, inverse: [UInt32]) {
        if recentLength != n {
            recent.removeAll()
            recentLength = n
        }
        let cacheKey = pass << 32 | (firstBlock ?? 0)
        if var hit = recent[cacheKey] {
            if wanted && firstBlock == nil && hit.inverse.isEmpty {
                hit.inverse = CascadeLayout.inverse(of: hit.order)
                recent[cacheKey] = hit
            }
            return hit
        }
        let master = self.master(pass: pass, length: n)
        var out: [UInt32]
        if master.count == n {
            out = master
        } else {
            out = []
            out.reserveCapacity(n)
            for j in master where j < UInt32(n) { out.append(j) }
        }
        var mask: [UInt64]?
        if let k = firstBlock {
            var m = [UInt64](repeating: 0, count: (n + 63) / 64)
            for i in 0..<min(k, n) { let j = Int(out[i]); m[j >> 6] |= 1 << UInt64(j & 63) }
            mask = m
        }
        if firstBlock != nil { out = [] }  // callers of two-block passes keep the mask only
        let entry = (order: out, mask: mask, inverse: wanted && firstBlock == nil ? CascadeLayout.inverse(of: out) : [])
        recent[cacheKey] = entry
        return entry
    }
}
