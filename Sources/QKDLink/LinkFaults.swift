#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import QKDCore
import QKDPhysics
import QKDWire

/// Faults injected into this node's ends of its links (`qkdctl fault ...`), as a pure value:
/// what happens to a message leaving or arriving on a link (`LinkChannel` asks, with the link
/// and kind of a frame it builds or has decoded). Both ends of a link get the same
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

    static func isQuantum(_ kind: MessageKind) -> Bool { kind == .quantumFrame }

    /// What to do with a message of `kind` this end is sending on `link`.
    public mutating func outgoing(_ kind: MessageKind, on link: LinkIndex) -> Outgoing {
        guard let f = faults[link] else { return .send }
        if f.cut || (f.classicalCut && !LinkFaults.isQuantum(kind)) {
            dropped[link, default: 0] += 1
            return .drop
        }
        return f.delayNs > 0 && !LinkFaults.isQuantum(kind) ? .delay(f.delayNs) : .send
    }

    /// Whether a message of `kind` that arrived on `link` passes (a dropped one is counted).
    public mutating func admits(_ kind: MessageKind, on link: LinkIndex) -> Bool {
        guard let f = faults[link] else { return true }
        if f.cut || (f.classicalCut && !LinkFaults.isQuantum(kind)) {
            dropped[link, default: 0] += 1
            return false
        }
        return true
    }

    /// The payload of a quantum frame that arrived on `link`, thinned by the link's extra loss
    /// (unchanged without one, or if it is not a quantum frame: the engine's decoder rejects it).
    public mutating func arriving(quantumFrame payload: [UInt8], on link: LinkIndex) -> [UInt8] {
        guard let f = faults[link], f.extraLossDb > 0, let quantum = try? QuantumFrame.decode(payload) else { return payload }
        return LinkFaults.attenuate(quantum, transmittance: pow(10, -f.extraLossDb / 10), random: &random).encoded()
    }

    /// Each photon survives with probability `transmittance`; pulses left empty are removed,
    /// except where the receiver's dark count is marked (detector noise is not attenuated).
    static func attenuate(_ frame: QuantumFrame, transmittance t: Double, random: inout Xoshiro256) -> QuantumFrame {
        var out = frame
        out.offsets.removeAll(keepingCapacity: true)
        out.photons.removeAll(keepingCapacity: true)
        out.states.removeAll(keepingCapacity: true)
        for i in frame.offsets.indices {
            var kept: UInt8 = 0
            for _ in 0..<frame.photons[i] where random.nextUnitDouble() < t { kept += 1 }
            guard kept > 0 || frame.states[i] & ArrivalBatch.darkCount != 0 else { continue }
            out.offsets.append(frame.offsets[i])
            out.photons.append(kept)
            out.states.append(frame.states[i])
        }
        return out
    }
}
