import QKDCore
import QKDWire

/// Alice's side of Cascade: she answers parity queries over her bits, which she never
/// changes, and counts every parity bit she discloses.
public struct CascadeAlice: Sendable {
    public let layout: CascadeLayout
    public let block: UInt64
    private let key: BitVector
    private var permuted: [[UInt64]?]
    /// Parity bits disclosed so far.
    public private(set) var leakedBits = 0

    public init(block: UInt64, key: BitVector, layout: CascadeLayout) {
        precondition(key.count == layout.length, "key and layout lengths differ")
        self.block = block
        self.key = key
        self.layout = layout
        permuted = Array(repeating: nil, count: layout.passes)
    }

    /// Answers a request. A query outside the key or for an unknown pass refuses the whole
    /// request (the round is discarded).
    public mutating func answer(_ request: CascadeRequest) throws(ProtocolError) -> CascadeReply {
        guard request.block == block else {
            throw ProtocolError(.unknownRound, "cascade request for block \(request.block), this run is block \(block)")
        }
        var bits: [UInt8] = []
        bits.reserveCapacity(request.queries.count)
        for q in request.queries {
            let pass = Int(q.pass)
            guard pass < layout.passes else { throw ProtocolError(.outOfRange, "cascade pass \(pass) ≥ \(layout.passes)") }
            let start = Int(q.start), length = Int(q.length)
            guard start + length <= layout.length else {
                throw ProtocolError(.outOfRange, "cascade range [\(start), \(start + length)) outside \(layout.length) bits")
            }
            if length == 0 && layout.usesMask(pass) {
                let first = layout.firstBlockParity(key, pass: pass)
                bits.append(first)
                if layout.blockCount(pass) == 2 { bits.append(first ^ UInt8(key.weight & 1)) }
                continue
            }
            if permuted[pass] == nil { permuted[pass] = layout.permuted(key, pass: pass) }
            let words = permuted[pass]!
            if length == 0 {
                let k = layout.blockSizes[pass]
                for b in 0..<layout.blockCount(pass) {
                    bits.append(CascadeLayout.parity(words, b * k, min(layout.length, (b + 1) * k)))
                }
            } else {
                bits.append(CascadeLayout.parity(words, start, start + length))
            }
        }
        leakedBits += bits.count
        return CascadeReply(block: block, parities: bits)
    }
}

/// Bob's side of Cascade (Brassard & Salvail, EUROCRYPT 1993), as a pure instance: he asks
/// for parities, runs every binary search of every pass in parallel (one request carries the
/// next question of each), corrects his bits, and re-opens the blocks of other passes that a
/// correction made odd (the cascade). Alice's parities of sub-blocks are remembered and never
/// asked twice (sub-block reuse): each top-level block's binary search walks an implicit
/// binary tree whose nodes are numbered heap-style, and known parities sit in a flat array.
/// Top-level parities are kept up to date incrementally; a pass of at most two blocks is
/// only reordered if a search has to run in it. Everything iterates in a fixed order, so a
/// run is reproducible.
public struct CascadeBob: Sendable {
    struct Search {
        var pass: Int
        var block: Int
        var lo: Int
        var hi: Int
        var node: Int
        var live: Bool
    }

    public let layout: CascadeLayout
    public let block: UInt64
    public private(set) var key: BitVector
    private var permuted: [[UInt64]?]
    private var orders: [[UInt32]?]
    private var inverses: [[UInt32]?]
    private var aliceTop: [[UInt8]?]
    private var bobTop: [[UInt8]?]
    /// Per pass, Alice's parity of the left half of every internal tree node asked so far.
    /// Internal node n of block b (heap numbering, n < 2^⌈log2 k⌉) sits at b · 2^⌈log2 k⌉ + n.
    private var known: [KnownParities?]
    private var searches: [Search] = []
    /// Per pass, per top-level block: index in `searches` of its live search, or −1.
    private var slots: [[Int32]?]
    private var pending: [(query: CascadeQuery, search: Int)] = []
    private var currentPass = 0
    public private(set) var leakedBits = 0
    public private(set) var roundTrips = 0
    public private(set) var corrections = 0
    public private(set) var finished = false
    /// Set when Cascade gave up: inconsistent parities (a tampered or wrong answer can make a
    /// block look odd for ever) hit the bounds below. Verification then rejects the block.
    public private(set) var abandoned = false
    /// No honest run at a QBER Cascade can handle comes near these.
    var maxCorrections: Int { max(64, layout.length / 4) }
    static let maxRoundTrips = 100_000

    public init(block: UInt64, key: BitVector, layout: CascadeLayout) {
        precondition(key.count == layout.length, "key and layout lengths differ")
        self.block = block
        self.key = key
        self.layout = layout
        permuted = Array(repeating: nil, count: layout.passes)
        orders = Array(repeating: nil, count: layout.passes)
        inverses = Array(repeating: nil, count: layout.passes)
        aliceTop = Array(repeating: nil, count: layout.passes)
        bobTop = Array(repeating: nil, count: layout.passes)
        known = Array(repeating: nil, count: layout.passes)
        slots = Array(repeating: nil, count: layout.passes)
    }

    /// The first request: the top-level parities of pass 1.
    public mutating func start() -> CascadeRequest {
        beginPass(0)
        return topLevelRequest(0)
    }

    private mutating func topLevelRequest(_ pass: Int) -> CascadeRequest {
        pending = [(.topLevel(pass: pass), -1)]
        return CascadeRequest(block: block, queries: [.topLevel(pass: pass)])
    }

    /// Takes Alice's answers; returns the next request, or nil when reconciliation is over.
    public mutating func received(_ reply: CascadeReply) throws(ProtocolError) -> CascadeRequest? {
        guard reply.block == block, !finished else {
            throw ProtocolError(.unknownRound, "cascade reply for block \(reply.block) not expected")
        }
        var expected = 0
        for (q, _) in pending { expected += q.length == 0 ? layout.blockCount(Int(q.pass)) : 1 }
        guard reply.parities.count == expected else {
            throw ProtocolError(.lengthMismatch, "cascade reply has \(reply.parities.count) parities, \(expected) were asked")
        }
        roundTrips += 1
        leakedBits += expected
        var i = 0
        for (q, searchIndex) in pending {
            let pass = Int(q.pass)
            if q.length == 0 {
                let n = layout.blockCount(pass)
                aliceTop[pass] = Array(reply.parities[i..<i + n])
                i += n
                openOddBlocks(pass: pass)
            } else {
                let s = searches[searchIndex]
                // The node's left child holds the asked range.
                known[pass]!.set(s.block * treeSize(pass) + s.node, parity: reply.parities[i])
                i += 1
            }
        }
        pending = []
        return advance()
    }

    /// Computes Bob's top-level parities of a pass, reordering his bits only if needed.
    private mutating func beginPass(_ pass: Int) {
        currentPass = pass
        if layout.usesMask(pass) {
            let first = layout.firstBlockParity(key, pass: pass)
            bobTop[pass] = layout.blockCount(pass) == 2 ? [first, first ^ UInt8(key.weight & 1)] : [first]
        } else {
            build(pass)
            let k = layout.blockSizes[pass]
            bobTop[pass] = (0..<layout.blockCount(pass)).map {
                CascadeLayout.parity(permuted[pass]!, $0 * k, min(layout.length, ($0 + 1) * k))
            }
        }
        slots[pass] = [Int32](repeating: -1, count: layout.blockCount(pass))
    }

    private mutating func build(_ pass: Int) {
        guard permuted[pass] == nil else { return }
        if pass > 0 {
            let order = layout.order(pass)
            orders[pass] = order
            inverses[pass] = layout.inverses[pass].isEmpty ? layout.inverse(of: order) : layout.inverses[pass]
            permuted[pass] = layout.permuted(key, pass: pass, order: order)
        } else {
            permuted[pass] = layout.permuted(key, pass: 0)
        }
        known[pass] = KnownParities(nodes: layout.blockCount(pass) * treeSize(pass))
    }

    /// 2^⌈log2 k⌉: above the heap number of every internal node of a block's search tree.
    private func treeSize(_ pass: Int) -> Int {
        var size = 1
        while size < layout.blockSizes[pass] { size <<= 1 }
        return size
    }

    private func position(of j: Int, pass: Int) -> Int { pass == 0 ? j : Int(inverses[pass]![j]) }

    /// Starts a search on every top-level block of `pass` whose parity differs from Alice's.
    private mutating func openOddBlocks(pass: Int) {
        guard let top = aliceTop[pass] else { return }
        for b in 0..<top.count where bobTop[pass]![b] != top[b] { openSearch(pass: pass, block: b) }
    }

    private mutating func openSearch(pass: Int, block b: Int) {
        build(pass)
        closeSearch(pass: pass, block: b)
        let k = layout.blockSizes[pass]
        slots[pass]![b] = Int32(searches.count)
        searches.append(Search(pass: pass, block: b, lo: b * k, hi: min(layout.length, (b + 1) * k), node: 1, live: true))
    }

    private mutating func closeSearch(pass: Int, block b: Int) {
        let slot = Int(slots[pass]![b])
        if slot >= 0 {
            searches[slot].live = false
            slots[pass]![b] = -1
        }
    }

    /// Runs every search as far as the known parities allow; collects the questions that
    /// remain; moves to the next pass when nothing is left.
    private mutating func advance() -> CascadeRequest? {
        var progressed = true
        while progressed {
            progressed = false
            if corrections > maxCorrections || roundTrips > Self.maxRoundTrips {
                abandoned = true
                finished = true
                searches = []
                return nil
            }
            var i = 0
            while i < searches.count {
                defer { i += 1 }
                guard searches[i].live else { continue }
                var s = searches[i]
                let base = s.block * treeSize(s.pass)
                var asked = false
                while s.hi - s.lo > 1 {
                    let mid = s.lo + (s.hi - s.lo) / 2
                    let alice = known[s.pass]!.get(base + s.node)
                    if alice == 0 {
                        asked = true
                        break
                    }
                    if CascadeLayout.parity(permuted[s.pass]!, s.lo, mid) != alice - 1 {
                        s.hi = mid
                        s.node = 2 * s.node
                    } else {
                        s.lo = mid
                        s.node = 2 * s.node + 1
                    }
                }
                searches[i] = s
                if !asked {
                    searches[i].live = false
                    slots[s.pass]![s.block] = -1
                    correct(s.pass == 0 ? s.lo : Int(orders[s.pass]![s.lo]))
                    progressed = true
                    if corrections > maxCorrections { break }
                }
            }
        }
        // Compact: keep live searches, in order.
        var compacted: [Search] = []
        compacted.reserveCapacity(searches.count)
        for s in searches where s.live {
            slots[s.pass]![s.block] = Int32(compacted.count)
            compacted.append(s)
        }
        searches = compacted
        pending = searches.indices.map { i in
            let s = searches[i]
            return (CascadeQuery(pass: UInt8(s.pass), start: UInt32(s.lo), length: UInt32((s.hi - s.lo) / 2)), i)
        }
        if !pending.isEmpty { return CascadeRequest(block: block, queries: pending.map(\.query)) }
        guard currentPass + 1 < layout.passes else {
            finished = true
            return nil
        }
        beginPass(currentPass + 1)
        return topLevelRequest(currentPass)
    }

    /// Flips original bit `j`; in every pass already started, toggles the parity of the
    /// top-level block holding it: a block that became odd gets a search, one that became
    /// even loses its search.
    private mutating func correct(_ j: Int) {
        key.flip(j)
        corrections += 1
        for pass in 0...currentPass {
            let b: Int
            if permuted[pass] != nil {
                let pos = position(of: j, pass: pass)
                permuted[pass]![pos >> 6] ^= 1 << UInt64(pos & 63)
                b = pos / layout.blockSizes[pass]
            } else {
                b = layout.inFirstBlock(j, pass: pass) ? 0 : 1
            }
            bobTop[pass]![b] ^= 1
            guard let top = aliceTop[pass] else { continue }
            if bobTop[pass]![b] != top[b] {
                openSearch(pass: pass, block: b)
            } else {
                closeSearch(pass: pass, block: b)
            }
        }
    }
}

/// Two bits per search-tree node, packed: 0 not asked, 1 even, 2 odd (n bits of key need about
/// 2n bits per pass, so a pass's tree stays in cache).
struct KnownParities: Sendable {
    private var words: [UInt64]

    init(nodes: Int) { words = [UInt64](repeating: 0, count: (nodes + 31) / 32) }

    /// 0 unknown, else 1 + parity.
    @inline(__always)
    func get(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: (words[i >> 5] >> UInt64((i & 31) << 1)) & 3) }

    @inline(__always)
    mutating func set(_ i: Int, parity: UInt8) {
        let shift = UInt64((i & 31) << 1)
        words[i >> 5] = words[i >> 5] & ~(3 << shift) | UInt64(parity & 1 + 1) << shift
    }
}
