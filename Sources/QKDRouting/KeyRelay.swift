import QKDCore
import QKDKeyPool
import QKDTopology
import QKDWire

/// Where a relay's link keys come from: the node's pools, one per link. Keys are consumed the
/// moment a relay touches them (before anything they pad is sent), and the node's shell makes
/// that durable before it carries out the directives that follow: a key that padded something
/// sent is never used again, whatever happens to the relay or the node.
public protocol RelayKeys {
    /// Consumes `count` available keys of `link` (the sending end picks); nil if it cannot.
    mutating func take(link: String, count: Int) -> [(id: KeyID, bits: BitVector)]?
    /// Consumes the keys the peer named (the receiving end). Nil unless all are available; then
    /// those that are held are consumed anyway (the peer has used them).
    mutating func take(link: String, named: [KeyID]) -> [BitVector]?
    /// A transit hop: the named keys of `incoming` and `count` keys of `outgoing`, consumed
    /// together (one durable write). Nil for the outgoing keys if there are not enough (the
    /// incoming ones are consumed anyway); nil for both if the named keys are not all here.
    mutating func takeHop(incoming: String, named: [KeyID], outgoing: String, count: Int)
        -> (incoming: [BitVector], outgoing: [(id: KeyID, bits: BitVector)]?)?
    /// The destination, before it acknowledges a relay for an application: why it cannot hold
    /// these keys for their slave SAE (as many keys waiting as the KME allows, counting
    /// `acknowledgedBits` of the same pair's relays acknowledged here and not yet stored, or a
    /// key ID already held), or nil if it can.
    func storageRefusal(for application: RelayApplication, acknowledgedBits: Int) -> String?
}

extension RelayKeys {
    public mutating func takeHop(incoming: String, named: [KeyID], outgoing: String, count: Int)
        -> (incoming: [BitVector], outgoing: [(id: KeyID, bits: BitVector)]?)?
    {
        guard let inBits = take(link: incoming, named: named) else { return nil }
        return (inBits, take(link: outgoing, count: count))
    }
}

/// One node's part in hop-by-hop key relays, as a pure instance (ETSI GS QKD 020 semantics).
///
/// The source takes k0, keys of its first link, as the end-to-end key K. Every trusted node on
/// the path learns K from the previous link's keys and sends it on padded (one-time pad, XOR)
/// with keys of the next link, so each hop consumes ⌈bits/256⌉ keys of each of its links, never
/// reused, and one more for the forward's one-time authentication tag (`tag`): a bit flipped on
/// the hop voids the relay. Phases (each signal accepted only from the path neighbour that
/// sends it, and only in the stage that expects it):
///
/// 1. `RelayForward`, source → destination: each node consumes the incoming keys named by the
///    previous node, recovers K, consumes outgoing keys and sends K on padded with them.
/// 2. `relayAck`, destination → source: every node behind has K.
/// 3. `relayCommit`, source → destination: the destination releases K to its applications.
/// 4. `relayDone`, destination → source: the source releases K to its applications.
///
/// Any failure (a key missing, a link or node gone, a timeout) sends `relayAbort` both ways and
/// every node forgets K; the keys the relay touched stay consumed (they padded something that
/// was sent, or were named in the clear). So K is released by the source only once the
/// destination holds it releasable, and by the destination only once every hop has prepared and
/// the source has committed; what is not completed is delivered by nobody. (A source that times
/// out after the destination released K leaves a key at the destination that no application
/// will ask for; it expires there.)
public struct KeyRelay: Sendable {
    public enum Role: String, Sendable { case source, transit, destination }

    public enum Directive: Sendable, Equatable {
        case send(to: NodeID, kind: MessageKind, payload: [UInt8])
        /// K is releasable at this end (source or destination), for `application` if an
        /// application asked for it. At the destination this comes before the `relayDone` it
        /// sends, so a shell that stores the key first never confirms a key it could lose.
        case delivered(relay: KeyID, key: BitVector, path: [NodeID], application: RelayApplication?)
        /// The relay is void at this node, for `cause` (`reason` says it in words, for logs).
        case failed(relay: KeyID, cause: RelayFailureCause, reason: String)
    }

    /// How far a relay got at this node: what the next signal may be. Signals out of order
    /// (a `relayDone` before the commit went out, a commit before the ack) are ignored.
    enum Stage: Sendable { case forwarded, acknowledged, committed }

    struct Leg: Sendable {
        var role: Role
        var stage: Stage = .forwarded
        var path: [NodeID]
        /// This node's position on the path.
        var index: Int
        var key: BitVector
        var deadline: Instant
        var application: RelayApplication?
    }

    public let node: NodeID
    public let topology: Topology
    public let keyBits: Int
    public let timeoutNs: UInt64
    private var legs: [KeyID: Leg] = [:]
    /// Relays that ended here, with when, so that late messages are not mistaken for new ones;
    /// forgotten after 4 timeouts (no message of theirs can still be on its way).
    private var finished: [KeyID: Instant] = [:]
    private var lastNow = Instant(nanoseconds: 0)

    public init(node: NodeID, topology: Topology, keyBits: Int = 256, timeoutMs: UInt64 = 5000) {
        self.node = node
        self.topology = topology
        self.keyBits = keyBits
        timeoutNs = timeoutMs * 1_000_000
    }

    public var inFlight: Int { legs.count }

    func linkName(_ a: NodeID, _ b: NodeID) -> String? {
        topology.links(of: a).first { $0.peer(of: a) == b }?.name
    }

    /// Starts a relay of `bits` bits along `path` (this node first), for `application` if given
    /// (its keys must add up to `bits`).
    public mutating func start(relay: KeyID, path: [NodeID], bits: Int, application: RelayApplication? = nil, at now: Instant,
                               keys: inout some RelayKeys) -> [Directive] {
        lastNow = max(lastNow, now)
        guard path.count >= 2, path.first == node, bits > 0, bits % 8 == 0, bits <= RelayForward.maxBits,
              application.map({ $0.keySize * $0.keyIDs.count == bits }) ?? true, let link = linkName(path[0], path[1]) else {
            return [.failed(relay: relay, cause: .badRequest, reason: "bad relay request: \(bits) bits along \(path.map(\.rawValue))")]
        }
        let n = keysPerHop(bits: bits)
        guard let taken = keys.take(link: link, count: n), taken.count == n else {
            return [.failed(relay: relay, cause: .noKeys, reason: "link \(link): fewer than \(n) keys available")]
        }
        let k0 = taken.dropLast(), mac = taken.last!
        let key = KeyRelay.concatenate(k0.map(\.bits), bits: bits)
        legs[relay] = Leg(role: .source, path: path, index: 0, key: key, deadline: now.advanced(byNanoseconds: timeoutNs),
                          application: application)
        var forward = RelayForward(relay: relay, path: path.map(\.rawValue), hop: 1, bits: bits, keys: k0.map(\.id), padded: [],
                                   application: application, macKey: mac.id)
        forward.tag = KeyRelay.tag(forward, macKey: mac.bits)
        return [.send(to: path[1], kind: .relayForward, payload: forward.encoded())]
    }

    /// A relay message from neighbour `from`.
    public mutating func received(_ kind: MessageKind, _ payload: [UInt8], from: NodeID, at now: Instant,
                                  keys: inout some RelayKeys) -> [Directive] {
        lastNow = max(lastNow, now)
        switch kind {
        case .relayForward:
            guard let forward = try? RelayForward.decode(payload) else { return [] }
            return prepare(forward, from: from, at: now, keys: &keys)
        case .relayAck, .relayCommit, .relayDone, .relayAbort:
            guard let signal = try? RelaySignal.decode(payload), let leg = legs[signal.relay] else { return [] }
            let previous = leg.index > 0 ? leg.path[leg.index - 1] : nil
            let next = leg.index + 1 < leg.path.count ? leg.path[leg.index + 1] : nil
            switch kind {
            case .relayAck where from == next && leg.stage == .forwarded:
                if leg.role == .source {
                    legs[signal.relay]?.stage = .committed
                    return [.send(to: next!, kind: .relayCommit, payload: signal.encoded())]
                }
                legs[signal.relay]?.stage = .acknowledged
                return [.send(to: previous!, kind: .relayAck, payload: signal.encoded())]
            case .relayCommit where from == previous && leg.stage == .acknowledged:
                if leg.role == .destination {
                    legs[signal.relay] = nil
                    finished[signal.relay] = lastNow
                    return [.delivered(relay: signal.relay, key: leg.key, path: leg.path, application: leg.application),
                            .send(to: previous!, kind: .relayDone, payload: signal.encoded())]
                }
                legs[signal.relay]?.stage = .committed
                return [.send(to: next!, kind: .relayCommit, payload: signal.encoded())]
            case .relayDone where from == next && leg.stage == .committed:
                if leg.role == .source {
                    legs[signal.relay] = nil
                    finished[signal.relay] = lastNow
                    return [.delivered(relay: signal.relay, key: leg.key, path: leg.path, application: leg.application)]
                }
                legs[signal.relay] = nil
                finished[signal.relay] = lastNow
                return [.send(to: previous!, kind: .relayDone, payload: signal.encoded())]
            case .relayAbort where from == previous || from == next:
                return abort(signal.relay, cause: signal.cause ?? .outOfPlace, reason: signal.reason, except: from)
            default:
                return []  // out of place: ignored (the relay times out if it never completes)
            }
        default:
            return []
        }
    }

    /// Voids relays whose deadline passed.
    public mutating func tick(at now: Instant) -> [Directive] {
        lastNow = max(lastNow, now)
        for (id, at) in finished where now.nanoseconds(since: at) > 4 * timeoutNs { finished[id] = nil }
        var out: [Directive] = []
        for (id, leg) in legs where leg.deadline <= now {
            out += abort(id, cause: .timedOut, reason: "timed out at \(node)", except: nil)
        }
        return out
    }

    /// A neighbour's link went down: every relay through it is void.
    public mutating func linkDown(to neighbour: NodeID) -> [Directive] {
        var out: [Directive] = []
        for (id, leg) in legs where leg.path.contains(neighbour) {
            let i = leg.index
            if (i > 0 && leg.path[i - 1] == neighbour) || (i + 1 < leg.path.count && leg.path[i + 1] == neighbour) {
                out += abort(id, cause: .linkDown, reason: "link \(node)-\(neighbour) down", except: neighbour)
            }
        }
        return out
    }

    private mutating func prepare(_ f: RelayForward, from: NodeID, at now: Instant, keys: inout some RelayKeys) -> [Directive] {
        let path = f.path.map(NodeID.init)
        let fail = { (cause: RelayFailureCause, reason: String) -> [Directive] in
            [.send(to: from, kind: .relayAbort, payload: RelaySignal(relay: f.relay, cause: cause, reason: reason).encoded()),
             .failed(relay: f.relay, cause: cause, reason: reason)]
        }
        // A forward of a relay this node holds, or that ended here, is a duplicate or late: it
        // changes nothing (answering it with an abort would void a relay that is going well).
        if legs[f.relay] != nil || finished[f.relay] != nil { return [] }
        guard path[f.hop] == node, path[f.hop - 1] == from,
              Set(path).count == path.count, let inLink = linkName(from, node) else {
            return fail(.outOfPlace, "relay message out of place at \(node)")
        }
        let n = keysPerHop(bits: f.bits)
        guard f.keys.count == n - 1, !f.keys.contains(f.macKey), f.padded.count == (f.hop == 1 ? 0 : (f.bits + 63) / 64) else {
            return fail(.malformed, "malformed relay at \(node)")
        }
        let last = f.hop == path.count - 1
        let next = last ? nil : path[f.hop + 1]
        let outLink = next.flatMap { linkName(node, $0) }
        if !last && outLink == nil { return fail(.outOfPlace, "relay path \(f.path) has no link \(node)-\(next!)") }
        let named = f.keys + [f.macKey]
        let taken = last ? keys.take(link: inLink, named: named).map { ($0, nil as [(id: KeyID, bits: BitVector)]?) }
            : keys.takeHop(incoming: inLink, named: named, outgoing: outLink!, count: n)
        guard let (inAll, outKeys) = taken, inAll.count == n else {
            finished[f.relay] = lastNow
            return fail(.noKeys, "link \(inLink): keys named by \(from) not available at \(node)")
        }
        // The keys are consumed whatever the tag says (they were named in the clear).
        guard KeyRelay.tag(f, macKey: inAll[n - 1]) == f.tag else {
            finished[f.relay] = lastNow
            return fail(.forged, "relay forward from \(from) fails its authentication tag at \(node): voided")
        }
        let inBits = Array(inAll.prefix(n - 1))
        let pad = KeyRelay.concatenate(inBits, bits: f.bits)
        let key = f.hop == 1 ? pad : KeyRelay.xor(BitVector(words: f.padded, count: f.bits), pad)
        let deadline = now.advanced(byNanoseconds: timeoutNs)
        if last, let app = f.application, let refusal = keys.storageRefusal(for: app, acknowledgedBits: acknowledgedBits(master: app.master, slave: app.slave)) {
            // Refused before anything is released: the source gets the reason and no retry
            // would change it.
            finished[f.relay] = lastNow
            return fail(.refusedByDestination, "refused by the destination: " + refusal)
        }
        if last {
            legs[f.relay] = Leg(role: .destination, stage: .acknowledged, path: path, index: f.hop, key: key, deadline: deadline,
                                application: f.application)
            return [.send(to: from, kind: .relayAck, payload: RelaySignal(relay: f.relay).encoded())]
        }
        guard let out = outKeys else {
            finished[f.relay] = lastNow
            return fail(.noKeys, "link \(node)-\(next!): fewer than \(n) keys available")
        }
        legs[f.relay] = Leg(role: .transit, path: path, index: f.hop, key: key, deadline: deadline)
        let pads = out.dropLast(), mac = out.last!
        let padded = KeyRelay.xor(key, KeyRelay.concatenate(pads.map(\.bits), bits: f.bits))
        var forward = RelayForward(relay: f.relay, path: f.path, hop: f.hop + 1, bits: f.bits, keys: pads.map(\.id), padded: padded.words,
                                   application: f.application, macKey: mac.id)
        forward.tag = KeyRelay.tag(forward, macKey: mac.bits)
        return [.send(to: next!, kind: .relayForward, payload: forward.encoded())]
    }

    /// Key bits of `master`'s relays to `slave` that this destination acknowledged and has
    /// not yet stored: counted against the slave's bound with those already waiting, so
    /// relays in flight together cannot pass it together.
    func acknowledgedBits(master: String, slave: String) -> Int {
        legs.values.reduce(0) { sum, leg in
            guard leg.role == .destination, let app = leg.application, app.master == master, app.slave == slave else { return sum }
            return sum + app.keySize * app.keyIDs.count
        }
    }

    private mutating func abort(_ relay: KeyID, cause: RelayFailureCause, reason: String, except: NodeID?) -> [Directive] {
        guard let leg = legs.removeValue(forKey: relay) else { return [] }
        finished[relay] = lastNow
        var out: [Directive] = []
        let i = leg.index
        let signal = RelaySignal(relay: relay, cause: cause, reason: reason).encoded()
        for neighbour in [i > 0 ? leg.path[i - 1] : nil, i + 1 < leg.path.count ? leg.path[i + 1] : nil] {
            if let neighbour, neighbour != except { out.append(.send(to: neighbour, kind: .relayAbort, payload: signal)) }
        }
        out.append(.failed(relay: relay, cause: cause, reason: reason))
        return out
    }

    /// Link keys one hop of a relay of `bits` bits consumes at each end: the pads, ⌈bits/256⌉,
    /// and one key for the hop's authentication tag.
    public func keysPerHop(bits: Int) -> Int { (bits + keyBits - 1) / keyBits + 1 }

    /// The one-time Wegman–Carter tag of a forward under a 256-bit link key used for nothing
    /// else: its first 128 bits key `TranscriptHash` (GF(2^127 − 1)), the next 128 are the pad
    /// (`TranscriptTag`). A forger who changes any bit of the message matches the tag with
    /// probability at most (L + 1)/(2^127 − 1) + 2^-126, L its 120-bit chunks (Wegman & Carter
    /// 1981; Stinson 1996): below 2^-110 for the largest relay.
    public static func tag(_ forward: RelayForward, macKey: BitVector) -> UInt128 {
        let w = macKey.words + [UInt64](repeating: 0, count: max(0, 4 - macKey.words.count))
        var hash = TranscriptHash(key: UInt128(w[1]) << 64 | UInt128(w[0]))
        hash.update(forward.authenticatedBytes)
        return TranscriptTag.tag(hash.finalize(), pad: TranscriptTag.pad(w[2], w[3]))
    }

    static func concatenate(_ parts: [BitVector], bits: Int) -> BitVector {
        var all = BitVector()
        for p in parts { all.append(contentsOf: p) }
        return all.slice(from: 0, length: bits)
    }

    static func xor(_ a: BitVector, _ b: BitVector) -> BitVector {
        BitVector(words: zip(a.words, b.words).map { $0 ^ $1 }, count: a.count)
    }
}
