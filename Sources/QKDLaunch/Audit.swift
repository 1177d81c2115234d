import Foundation
import QKDCore
import QKDTopology
import QKDWire

/// What `qkdctl audit --json` prints: per link, whether both ends hold the same available keys
/// with the same bits, compared through keyed digests (never the keys).
public struct AuditReport: Codable, Equatable, Sendable {
    public struct Link: Codable, Equatable, Sendable {
        public var link: String
        /// Available keys at each end.
        public var aKeys: Int
        public var bKeys: Int
        /// Keys available at both ends whose digests agree.
        public var keysMatched: Int
        public var mismatchedKeys: Int
        /// Keys available at one end and not held (or only pending) at the other, still so
        /// after the re-checks that let in-flight rounds settle.
        public var orphanKeys: Int
        /// Whether both ends answered.
        public var reachable: Bool

        enum CodingKeys: String, CodingKey {
            case link, reachable
            case aKeys = "a_keys", bKeys = "b_keys", keysMatched = "keys_matched"
            case mismatchedKeys = "mismatched_keys", orphanKeys = "orphan_keys"
        }
    }

    public var linksChecked: Int
    public var linksUnreachable: Int
    public var keysMatched: Int
    public var mismatchedKeys: Int
    public var orphanKeys: Int
    public var ok: Bool
    public var links: [Link]

    enum CodingKeys: String, CodingKey {
        case ok, links
        case linksChecked = "links_checked", linksUnreachable = "links_unreachable", keysMatched = "keys_matched"
        case mismatchedKeys = "mismatched_keys", orphanKeys = "orphan_keys"
    }
}

extension Network {
    /// Compares the pools of both ends of every link. A key available at one end but not at
    /// the other may be in flight (a round's acknowledgement or an authentication key on its
    /// way): such keys are re-checked `rechecks` times, `settleMs` apart, and only those still
    /// unmatched count as orphans. Digests use a fresh random salt per link. Links are audited
    /// `parallel` at a time (each asks both its ends at once), so that a large network under
    /// load is audited in a few rounds of replies rather than one link after the other.
    public func audit(rechecks: Int = 4, settleMs: Int = 400, parallel: Int = 8) -> AuditReport {
        let links = Self.parallelMap(topology.links, width: parallel) { auditLink($0, rechecks: rechecks, settleMs: settleMs) }
        let mismatched = links.map(\.mismatchedKeys).reduce(0, +)
        let orphans = links.map(\.orphanKeys).reduce(0, +)
        let unreachable = links.filter { !$0.reachable }.count
        return AuditReport(linksChecked: links.count - unreachable, linksUnreachable: unreachable,
                           keysMatched: links.map(\.keysMatched).reduce(0, +), mismatchedKeys: mismatched, orphanKeys: orphans,
                           ok: mismatched == 0 && orphans == 0 && unreachable == 0, links: links)
    }

    /// One link's audit: both ends' digests under one salt, then the re-checks of keys only
    /// one end holds.
    func auditLink(_ link: TopologyLink, rechecks: Int, settleMs: Int) -> AuditReport.Link {
        var g = SystemRandomNumberGenerator()
        let salt = UInt64.random(in: 1...UInt64.max, using: &g)
        func snapshot() -> (a: [String: KeyDigest], b: [String: KeyDigest])? {
            let replies = keyDigests(nodes: [link.a, link.b], link: link.name, salt: salt)
            guard let a = replies[link.a], let b = replies[link.b] else { return nil }
            return (Dictionary(a.map { ($0.keyID, $0) }, uniquingKeysWith: { x, _ in x }),
                    Dictionary(b.map { ($0.keyID, $0) }, uniquingKeysWith: { x, _ in x }))
        }
        guard var (a, b) = snapshot() else {
            return .init(link: link.name, aKeys: 0, bKeys: 0, keysMatched: 0, mismatchedKeys: 0, orphanKeys: 0, reachable: false)
        }
        var mismatched = Set<String>()
        var matched = 0
        func unmatched(_ x: [String: KeyDigest], _ y: [String: KeyDigest]) -> Set<String> {
            Set(x.filter { !$0.value.pending && (y[$0.key] == nil || y[$0.key]!.pending) }.keys)
        }
        for (id, da) in a where !da.pending {
            guard let db = b[id], !db.pending else { continue }
            if da.digest == db.digest { matched += 1 } else { mismatched.insert(id) }
        }
        var orphans = unmatched(a, b).union(unmatched(b, a))
        var round = 0
        while !orphans.isEmpty && round < rechecks {
            round += 1
            usleep(UInt32(settleMs) * 1000)
            guard let next = snapshot() else { break }
            (a, b) = next
            orphans = orphans.intersection(unmatched(a, b).union(unmatched(b, a)))
        }
        return .init(link: link.name, aKeys: a.values.filter { !$0.pending }.count, bKeys: b.values.filter { !$0.pending }.count,
                     keysMatched: matched, mismatchedKeys: mismatched.count, orphanKeys: orphans.count, reachable: true)
    }

    /// `transform` over `items` on up to `width` threads (the work here waits on replies, not
    /// on the CPU), results in the order of `items`.
    static func parallelMap<T, R>(_ items: [T], width: Int, _ transform: @escaping @Sendable (T) -> R) -> [R] where T: Sendable {
        let results = LockedResults<R>(count: items.count)
        let group = DispatchGroup()
        for worker in 0..<max(1, min(width, items.count)) {
            group.enter()
            let thread = Thread {
                while let i = results.claim() { results.set(i, transform(items[i])) }
                group.leave()
            }
            thread.name = "audit-\(worker)"
            thread.start()
        }
        group.wait()
        return results.values()
    }
}

/// Work indices handed out once each, and the results put back, under one lock.
private final class LockedResults<R>: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private var slots: [R?]

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func claim() -> Int? {
        lock.withLock {
            guard next < slots.count else { return nil }
            next += 1
            return next - 1
        }
    }

    func set(_ i: Int, _ value: R) { lock.withLock { slots[i] = value } }

    func values() -> [R] { lock.withLock { slots.map { $0! } } }
}
