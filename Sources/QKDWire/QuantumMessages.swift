/// The photons of one frame arriving at the end of a channel segment (Alice → Bob, or through
/// an interposer): pulses [frameStart, frameStart + pulses) with at least one photon there.
public struct QuantumFrame: Equatable, Sendable {
    public var frameIndex: UInt64
    public var frameStart: UInt64
    public var pulses: UInt32
    /// Offsets within the frame, strictly increasing, each below `pulses`.
    public var offsets: [UInt32]
    /// Photon numbers at those offsets (≥ 1, or 0 at a pulse marked as a dark count only).
    public var photons: [UInt8]
    /// Polarisation states: bit 0 value, bit 1 basis; bit 2 marks the receiver's dark count
    /// at this pulse (`ArrivalBatch.darkCount`).
    public var states: [UInt8]

    public init(frameIndex: UInt64, frameStart: UInt64, pulses: UInt32, offsets: [UInt32], photons: [UInt8], states: [UInt8]) {
        self.frameIndex = frameIndex
        self.frameStart = frameStart
        self.pulses = pulses
        self.offsets = offsets
        self.photons = photons
        self.states = states
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 24 + offsets.count * 6)
        w.u64(frameIndex)
        w.u64(frameStart)
        w.u32(pulses)
        w.u32Array(offsets)
        w.raw(photons)
        w.raw(states)
        return w.bytes
    }

    /// Decodes and checks consistency: offsets increasing and inside the frame, states in
    /// 0…7, photon numbers ≥ 1 except at a pulse marked as a dark count.
    public static func decode(_ payload: [UInt8]) throws(WireError) -> QuantumFrame {
        var r = ByteReader(payload)
        let index = try r.u64(), start = try r.u64(), pulses = try r.u32()
        let offsets = try r.u32Array("quantum frame offsets")
        let photons = try r.bytes(offsets.count)
        let states = try r.bytes(offsets.count)
        try r.expectEnd("quantum frame")
        var previous: Int64 = -1
        for o in offsets {
            guard Int64(o) > previous, o < pulses else {
                throw WireError(.malformedPayload, "quantum frame \(index): offset \(o) is out of order or outside the frame of \(pulses) pulses")
            }
            previous = Int64(o)
        }
        for i in states.indices where states[i] > 7 || (photons[i] == 0 && states[i] & 4 == 0) {
            throw WireError(.malformedPayload, "quantum frame \(index): entry \(i) has state \(states[i]) and \(photons[i]) photons (states are 0…7; no photon only at a dark count)")
        }
        return QuantumFrame(frameIndex: index, frameStart: start, pulses: pulses, offsets: offsets, photons: photons, states: states)
    }
}

/// Bob → Alice after a frame: where he clicked and in which basis (never his bits).
public struct SiftAnnouncement: Equatable, Sendable {
    public var frameIndex: UInt64
    public var offsets: [UInt32]
    public var bases: [UInt8]

    public init(frameIndex: UInt64, offsets: [UInt32], bases: [UInt8]) {
        self.frameIndex = frameIndex
        self.offsets = offsets
        self.bases = bases
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 16 + offsets.count * 4 + offsets.count / 8)
        w.u64(frameIndex)
        w.u32Array(offsets)
        w.bitArray(bases)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> SiftAnnouncement {
        var r = ByteReader(payload)
        let index = try r.u64()
        let offsets = try r.u32Array("sift announcement offsets")
        let bases = try r.bitArray("sift announcement bases")
        try r.expectEnd("sift announcement")
        return SiftAnnouncement(frameIndex: index, offsets: offsets, bases: bases)
    }
}

/// Alice → Bob: which announced clicks are in her basis, the class of every clicked pulse,
/// how many pulses of each class the frame held, and whether the block closes here.
public struct SiftReply: Equatable, Sendable {
    public var frameIndex: UInt64
    /// Alice's block the frame's clicks go into: Bob follows her numbering, so a reply he
    /// never got or one altered on the way costs at most the block it falls in.
    public var blockIndex: UInt64
    public var matches: [UInt8]
    public var classes: [UInt8]
    public var classCounts: [UInt64]
    public var closesBlock: Bool

    public init(frameIndex: UInt64, blockIndex: UInt64, matches: [UInt8], classes: [UInt8], classCounts: [UInt64], closesBlock: Bool) {
        self.frameIndex = frameIndex
        self.blockIndex = blockIndex
        self.matches = matches
        self.classes = classes
        self.classCounts = classCounts
        self.closesBlock = closesBlock
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 64 + matches.count / 2)
        w.u64(frameIndex)
        w.u64(blockIndex)
        w.bitArray(matches)
        w.crumbArray(classes)
        for c in classCounts { w.u64(c) }
        w.u8(closesBlock ? 1 : 0)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> SiftReply {
        var r = ByteReader(payload)
        let index = try r.u64()
        let block = try r.u64()
        let matches = try r.bitArray("sift reply matches")
        let classes = try r.crumbArray("sift reply classes")
        guard classes.count == matches.count, classes.allSatisfy({ $0 <= 2 }) else {
            throw WireError(.malformedPayload, "sift reply \(index): \(classes.count) classes for \(matches.count) matches, or an unknown class")
        }
        let counts = [try r.u64(), try r.u64(), try r.u64()]
        let close = try r.u8()
        try r.expectEnd("sift reply")
        guard close <= 1 else { throw WireError(.malformedPayload, "sift reply \(index): block flag \(close)") }
        return SiftReply(frameIndex: index, blockIndex: block, matches: matches, classes: classes, classCounts: counts,
                         closesBlock: close == 1)
    }
}

/// Bob → Alice when a block closes: his bits at every revealed position (every sifted bit of
/// the test basis Z, all intensities), in block order.
public struct EstimationReveal: Equatable, Sendable {
    public var blockIndex: UInt64
    public var bits: [UInt8]

    public init(blockIndex: UInt64, bits: [UInt8]) {
        self.blockIndex = blockIndex
        self.bits = bits
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 16 + bits.count / 8)
        w.u64(blockIndex)
        w.bitArray(bits)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> EstimationReveal {
        var r = ByteReader(payload)
        let index = try r.u64()
        let bits = try r.bitArray("estimation reveal")
        try r.expectEnd("estimation reveal")
        return EstimationReveal(blockIndex: index, bits: bits)
    }
}

/// Alice → Bob: the block's statistics, from which both ends compute the same estimates.
/// Per class (signal, decoy, vacuum): pulses sent, clicks, sifted bits, revealed bits, errors.
public struct EstimationResult: Equatable, Sendable {
    public var blockIndex: UInt64
    public var pulses: [UInt64]
    public var clicks: [UInt64]
    public var sifted: [UInt64]
    public var revealed: [UInt64]
    public var errors: [UInt64]

    public init(blockIndex: UInt64, pulses: [UInt64], clicks: [UInt64], sifted: [UInt64], revealed: [UInt64], errors: [UInt64]) {
        self.blockIndex = blockIndex
        self.pulses = pulses
        self.clicks = clicks
        self.sifted = sifted
        self.revealed = revealed
        self.errors = errors
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 8 + 15 * 8)
        w.u64(blockIndex)
        for array in [pulses, clicks, sifted, revealed, errors] { for v in array { w.u64(v) } }
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> EstimationResult {
        var r = ByteReader(payload)
        let index = try r.u64()
        var arrays: [[UInt64]] = []
        for _ in 0..<5 { arrays.append([try r.u64(), try r.u64(), try r.u64()]) }
        try r.expectEnd("estimation result")
        for c in 0..<3 {
            guard arrays[1][c] <= arrays[0][c], arrays[2][c] <= arrays[1][c], arrays[3][c] <= arrays[2][c], arrays[4][c] <= arrays[3][c] else {
                throw WireError(.malformedPayload, "estimation result \(index): counts of class \(c) are not nested (pulses ≥ clicks ≥ sifted ≥ revealed ≥ errors)")
            }
        }
        return EstimationResult(blockIndex: index, pulses: arrays[0], clicks: arrays[1], sifted: arrays[2], revealed: arrays[3], errors: arrays[4])
    }
}
