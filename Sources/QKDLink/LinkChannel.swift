import QKDCore
import QKDTopology
import QKDWire

/// The classical side of a node's links as one pure value. It frames what the node sends (the
/// envelope with the link's next sequence number), checks what arrives (envelope, link of this
/// node, sender), and applies the injected faults both ways (`LinkFaults`): a frame's header is
/// built or read once, here, and nothing else in the node touches frame bytes.
///
/// A link's frames are accepted from its peer and from the link's interposer id (`eve:LINK`,
/// never a node's): the other end may send through an interposer before this end is told, and
/// frames in flight when she is taken out still arrive. The transport admits that id only for
/// the CURVE key of an interposer spliced into that link, only while she is spliced.
///
/// Freshness: each end numbers its frames per link from `firstSequence` (the shell passes its
/// wall clock in nanoseconds at start, so a restarted node numbers above everything its earlier
/// incarnation sent), and the receiver accepts each sequence number once, within a sliding
/// window of the highest seen (`ReplayWindow`, as IPsec's anti-replay window, RFC 4303
/// §3.4.3): a replayed or stale frame is rejected (`replayed`) and changes nothing.
public struct LinkChannel: Sendable {
    /// A frame to send now, to a peer (by node id).
    public struct Transmission: Equatable, Sendable {
        public let frame: [UInt8]
        public let peer: NodeID
    }

    public enum Arrival: Equatable, Sendable {
        /// A valid frame of a link of this node, from its peer or the link's interposer.
        case accepted(Envelope)
        /// A fault dropped it (counted in `faults.dropped`).
        case dropped
        /// Not a valid frame for this node; nothing changed.
        case rejected(WireError)
    }

    public let node: NodeID
    private let peers: [LinkIndex: NodeID]
    private let names: [LinkIndex: String]
    /// The first link to each neighbour (relay messages go to a neighbour, not a link).
    private let linkTo: [NodeID: LinkIndex]
    private var sequences: [LinkIndex: UInt64] = [:]
    private let firstSequence: UInt64
    private var windows: [LinkIndex: ReplayWindow] = [:]
    public private(set) var faults: LinkFaults
    /// Frames held by a delay fault, in the order they were sent (one delay per link keeps a
    /// link's frames in order).
    private var held: [(at: Instant, transmission: Transmission)] = []

    /// `faultSeed`: the loss fault's random stream (one per node and incarnation).
    public init(node: NodeID, links: [TopologyLink], faultSeed: UInt64, firstSequence: UInt64 = 0) {
        self.node = node
        self.firstSequence = firstSequence
        var peers: [LinkIndex: NodeID] = [:], names: [LinkIndex: String] = [:], linkTo: [NodeID: LinkIndex] = [:]
        for link in links {
            guard let peer = link.peer(of: node) else { continue }
            peers[link.index] = peer
            names[link.index] = link.name
            if linkTo[peer] == nil { linkTo[peer] = link.index }
        }
        self.peers = peers
        self.names = names
        self.linkTo = linkTo
        faults = LinkFaults(seed: faultSeed)
    }

    /// The routing id an interposer on `link` sends with.
    public static func interposerID(_ link: TopologyLink) -> NodeID { NodeID(ControlRequest.interposerRoutingID(link: link.name)) }

    /// Frames `payload` for the peer of `link`. Nil when there is nothing to send now: not a
    /// link of this node, a fault dropped it, or a delay holds it (`due` releases it).
    public mutating func send(_ kind: MessageKind, _ payload: [UInt8], on link: LinkIndex, at now: Instant) -> Transmission? {
        guard let peer = peers[link] else { return nil }
        let sequence = sequences[link, default: firstSequence]
        sequences[link] = sequence &+ 1
        let transmission = Transmission(frame: Envelope(kind: kind, link: link, sequence: sequence, payload: payload).encoded(), peer: peer)
        switch faults.outgoing(kind, on: link) {
        case .send: return transmission
        case .drop: return nil
        case .delay(let ns):
            held.append((now.advanced(byNanoseconds: ns), transmission))
            return nil
        }
    }

    /// `send` on the first link to the neighbour `peer` (nil if it is not one).
    public mutating func send(_ kind: MessageKind, _ payload: [UInt8], toNeighbour peer: NodeID, at now: Instant) -> Transmission? {
        guard let link = linkTo[peer] else { return nil }
        return send(kind, payload, on: link, at: now)
    }

    /// The held frames whose delay is over, in the order they were sent.
    public mutating func due(at now: Instant) -> [Transmission] {
        guard !held.isEmpty else { return [] }
        let out = held.filter { $0.at <= now }.map(\.transmission)
        held.removeAll { $0.at <= now }
        return out
    }

    /// When the next held frame is due.
    public var nextDue: Instant? { held.map(\.at).min() }

    /// Checks a frame from `sender` and applies the link's faults to it.
    public mutating func receive(_ bytes: [UInt8], from sender: NodeID) -> Arrival {
        var envelope: Envelope
        do {
            envelope = try Envelope.decode(bytes)
        } catch {
            return .rejected(error)
        }
        guard let peer = peers[envelope.link], let name = names[envelope.link] else {
            return .rejected(WireError(.unknownLink, "link \(envelope.link) does not end at \(node)"))
        }
        guard sender == peer || sender.rawValue == ControlRequest.interposerRoutingID(link: name) else {
            return .rejected(WireError(.unexpectedSender, "frame for link \(name) came from '\(sender)', expected '\(peer)'"))
        }
        // A frame a fault drops never arrived: it is not recorded as seen.
        guard faults.admits(envelope.kind, on: envelope.link) else { return .dropped }
        guard windows[envelope.link, default: ReplayWindow()].accept(envelope.sequence) else {
            return .rejected(WireError(.replayed, "\(envelope.kind) frame \(envelope.sequence) on link \(name) was seen before or is older than the last \(ReplayWindow.size)"))
        }
        if envelope.kind == .quantumFrame {
            envelope.payload = faults.arriving(quantumFrame: envelope.payload, on: envelope.link)
        }
        return .accepted(envelope)
    }

    /// Forgets the sequence numbers seen on `link` (the link went down): the peer's next frame
    /// starts a new window. Without this, a frame numbered far ahead (from a malicious or
    /// confused neighbour: CURVE admits no one else) would make every genuine frame of the peer
    /// "older than the window" for good; with it, such a frame breaks the link only until the
    /// liveness timeout. A replay after the reset needs the peer's or a spliced interposer's
    /// channel, which could replay anyway.
    public mutating func forgetSequences(_ link: LinkIndex) { windows[link] = nil }

    /// Changes a link's fault (`heal` is `Fault()`).
    public mutating func setFault(_ link: LinkIndex, _ fault: LinkFaults.Fault) { faults.set(link, fault) }

    /// Clears every link's faults (frames already held by a delay still go out when due).
    public mutating func healAll() { faults.healAll() }
}

/// Which sequence numbers of one sender on one link were seen: the highest, and a bitmap of
/// the `size` below it (RFC 4303 §3.4.3's sliding window). Reordering within the window (a
/// splice or an unsplice changes a frame's path) is accepted; a number seen before, or older
/// than the window, is not.
public struct ReplayWindow: Sendable, Equatable {
    public static let size: UInt64 = 1024
    private var highest: UInt64?
    /// Bit i of word i / 64: sequence `highest - i` was seen.
    private var seen = [UInt64](repeating: 0, count: Int(ReplayWindow.size / 64))

    public init() {}

    /// Records `sequence`; false if it was seen before or is below the window.
    public mutating func accept(_ sequence: UInt64) -> Bool {
        guard let top = highest else {
            highest = sequence
            seen[0] = 1
            return true
        }
        if sequence > top {
            shift(by: sequence - top)
            highest = sequence
            seen[0] |= 1
            return true
        }
        let age = top - sequence
        guard age < ReplayWindow.size else { return false }
        let (word, bit) = (Int(age / 64), age % 64)
        if seen[word] & (1 << bit) != 0 { return false }
        seen[word] |= 1 << bit
        return true
    }

    /// Moves the window up by `n`: every recorded age grows by `n`.
    private mutating func shift(by n: UInt64) {
        guard n < ReplayWindow.size else {
            seen = [UInt64](repeating: 0, count: seen.count)
            return
        }
        let words = Int(n / 64), bits = n % 64
        for i in stride(from: seen.count - 1, through: 0, by: -1) {
            let from = i - words
            var value: UInt64 = from >= 0 ? seen[from] << bits : 0
            if bits > 0, from - 1 >= 0 { value |= seen[from - 1] >> (64 - bits) }
            seen[i] = value
        }
    }
}
