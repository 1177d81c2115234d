#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import QKDCore
import QKDWire

/// Faults injected into this node's ends of its links (`qkdctl fault ...`), as a pure value:
/// what happens to a frame leaving or arriving on a link. Both ends of a link get the same
/// fault, so each direction is affected once.
///
/// - `cut`: a fibre cut. Nothing passes, quantum or classical.
/// - `classicalCut`: the link is on the edge of a partition. Its classical messages are dropped;
///   quantum frames still pass (and are useless without the classical channel).
/// - `delayNs`: every classical message leaving this end waits this long (one-way delay).
/// - `extraLossDb`: extra attenuation on the quantum channel, applied where the photons arrive:
///   each photon of an arriving pulse survives with probability 10^(−dB/10) (Binomial thinning,
///   the standard beam-splitter model of loss; a pulse left with no photon never arrives).
public struct LinkFaults: Sendable {
    public struct Fault: Equatable, Sendable {
        public var cut = false
        public var classicalCut = false
        public var delayNs: UInt64 = 0
        public var extraLossDb: Double = 0

        public init(cut: Bool = false, classicalCut: Bool = false, delayNs: UInt64 = 0, extraLossDb: Double = 0) {
            self.cut = cut
            self.classicalCut = classicalCut
            self.delayNs = delayNs
            self.extraLossDb = extraLossDb
        }

        public var isNone: Bool { self == Fault() }

        /// Short words for status: "cut", "partitioned", "delay 50 ms", "loss 3 dB".
        public var words: [String] {
            var out: [String] = []
            if cut { out.append("cut") }
            if classicalCut { out.append("partitioned") }
            if delayNs > 0 { out.append("delay \(Double(delayNs) / 1e6) ms") }
            if extraLossDb > 0 { out.append("loss \(extraLossDb) dB") }
            return out
        }
    }

    public enum Outgoing: Equatable, Sendable {
        case send
        case drop
        case delay(UInt64)
    }

    private(set) var faults: [LinkIndex: Fault] = [:]
    private var random: Xoshiro256
    /// Frames dropped by a fault, per link.
    public private(set) var dropped: [LinkIndex: UInt64] = [:]

    /// `seed`: the thinning's random stream (one per node and incarnation).
    public init(seed: UInt64) {
        random = Xoshiro256(seed: seed)
    }

    public func fault(_ link: LinkIndex) -> Fault { faults[link] ?? Fault() }

    public var active: [LinkIndex: Fault] { faults }

    /// Changes a link's fault (`heal` is `Fault()`).
    public mutating func set(_ link: LinkIndex, _ fault: Fault) {
        faults[link] = fault.isNone ? nil : fault
    }

    public mutating func healAll() { faults.removeAll() }

    /// The link index and message kind of a frame, read from its envelope header without
    /// decoding it (nil if the header is not one; the node's decoder rejects it later).
    public static func peek(_ frame: [UInt8]) -> (link: LinkIndex, kind: UInt8)? {
        guard frame.count >= Envelope.headerSize else { return nil }
        let link = UInt32(frame[4]) << 24 | UInt32(frame[5]) << 16 | UInt32(frame[6]) << 8 | UInt32(frame[7])
        return (LinkIndex(link), frame[3])
    }

    static func isQuantum(_ kind: UInt8) -> Bool { kind == MessageKind.quantumFrame.rawValue }

    /// What to do with a frame this end is sending.
    public mutating func outgoing(_ frame: [UInt8]) -> Outgoing {
        guard !faults.isEmpty, let (link, kind) = LinkFaults.peek(frame), let f = faults[link] else { return .send }
        if f.cut || (f.classicalCut && !LinkFaults.isQuantum(kind)) {
            dropped[link, default: 0] += 1
            return .drop
        }
        return f.delayNs > 0 && !LinkFaults.isQuantum(kind) ? .delay(f.delayNs) : .send
    }

    /// A frame that arrived: nil to drop it, else the frame to hand on (a quantum frame thinned
    /// by the link's extra loss).
    public mutating func incoming(_ frame: [UInt8]) -> [UInt8]? {
        guard !faults.isEmpty, let (link, kind) = LinkFaults.peek(frame), let f = faults[link] else { return frame }
        if f.cut || (f.classicalCut && !LinkFaults.isQuantum(kind)) {
            dropped[link, default: 0] += 1
            return nil
        }
        guard f.extraLossDb > 0, LinkFaults.isQuantum(kind), let envelope = try? Envelope.decode(frame),
              let quantum = try? QuantumFrame.decode(envelope.payload) else { return frame }
        let thinned = LinkFaults.attenuate(quantum, transmittance: pow(10, -f.extraLossDb / 10), random: &random)
        return Envelope(kind: envelope.kind, link: envelope.link, sequence: envelope.sequence, payload: thinned.encoded()).encoded()
    }

    /// Each photon survives with probability `transmittance`; pulses left empty are removed.
    static func attenuate(_ frame: QuantumFrame, transmittance t: Double, random: inout Xoshiro256) -> QuantumFrame {
        var out = frame
        out.offsets.removeAll(keepingCapacity: true)
        out.photons.removeAll(keepingCapacity: true)
        out.states.removeAll(keepingCapacity: true)
        for i in frame.offsets.indices {
            var kept: UInt8 = 0
            for _ in 0..<frame.photons[i] where random.nextUnitDouble() < t { kept += 1 }
            guard kept > 0 else { continue }
            out.offsets.append(frame.offsets[i])
            out.photons.append(kept)
            out.states.append(frame.states[i])
        }
        return out
    }
}
