import QKDCore

/// Bob → Alice when Cascade is over: a universal hash of his corrected key, the ID of the
/// pool key whose bits pad the round's two tags, and his Wegman–Carter tag over the round's
/// transcript.
public struct ReconciliationDone: Equatable, Sendable {
    public var block: UInt64
    public var verificationHash: UInt64
    public var authenticationKey: KeyID
    /// Earlier blocks whose result Bob accepted since his previous `Done`: Alice may commit them.
    public var acknowledged: [UInt64]
    public var tag: UInt64

    public init(block: UInt64, verificationHash: UInt64, authenticationKey: KeyID, acknowledged: [UInt64], tag: UInt64) {
        self.block = block
        self.verificationHash = verificationHash
        self.authenticationKey = authenticationKey
        self.acknowledged = acknowledged
        self.tag = tag
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 48 + acknowledged.count * 8)
        w.u64(block)
        w.u64(verificationHash)
        w.u64(authenticationKey.high)
        w.u64(authenticationKey.low)
        w.u32(UInt32(acknowledged.count))
        for a in acknowledged { w.u64(a) }
        w.u64(tag)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> ReconciliationDone {
        var r = ByteReader(payload)
        let block = try r.u64(), hash = try r.u64(), key = KeyID(high: try r.u64(), low: try r.u64())
        let n = Int(try r.u32())
        guard n * 8 + 8 == r.remaining else { throw WireError(.malformedPayload, "reconciliation done \(block): \(n) acknowledgements do not fit") }
        var acks: [UInt64] = []
        for _ in 0..<n { acks.append(try r.u64()) }
        let d = ReconciliationDone(block: block, verificationHash: hash, authenticationKey: key, acknowledged: acks, tag: try r.u64())
        try r.expectEnd("reconciliation done")
        return d
    }
}

/// Alice → Bob: whether the block is kept (hashes equal and Bob's tag valid), the final key
/// length after privacy amplification, and her tag.
public struct ReconciliationResult: Equatable, Sendable {
    public var block: UInt64
    public var accepted: Bool
    public var finalBits: UInt32
    /// Blocks whose acknowledgement Alice received (and so committed): Bob may commit them.
    public var confirmed: [UInt64]
    public var tag: UInt64

    public init(block: UInt64, accepted: Bool, finalBits: UInt32, confirmed: [UInt64], tag: UInt64) {
        self.block = block
        self.accepted = accepted
        self.finalBits = finalBits
        self.confirmed = confirmed
        self.tag = tag
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 32 + confirmed.count * 8)
        w.u64(block)
        w.u8(accepted ? 1 : 0)
        w.u32(finalBits)
        w.u32(UInt32(confirmed.count))
        for c in confirmed { w.u64(c) }
        w.u64(tag)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> ReconciliationResult {
        var r = ByteReader(payload)
        let block = try r.u64()
        let flag = try r.u8()
        let bits = try r.u32()
        let n = Int(try r.u32())
        guard n * 8 + 8 == r.remaining else { throw WireError(.malformedPayload, "reconciliation result \(block): \(n) confirmations do not fit") }
        var confirmed: [UInt64] = []
        for _ in 0..<n { confirmed.append(try r.u64()) }
        let tag = try r.u64()
        try r.expectEnd("reconciliation result")
        guard flag <= 1 else { throw WireError(.malformedPayload, "reconciliation result \(block): flag \(flag)") }
        return ReconciliationResult(block: block, accepted: flag == 1, finalBits: bits, confirmed: confirmed, tag: tag)
    }
}
