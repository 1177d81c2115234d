import QKDCore

/// Pool agreement when a link comes up, before any quantum frame. The link's `a` end offers
/// (`echo` 0) its session nonce and every key ID it holds for the link (pending, available or
/// reserved); the `b` end keeps the keys both hold, answers with its own nonce, `echo` set to
/// the offer's nonce, and the IDs it kept; the `a` end keeps those. Both then hold the same
/// set, and the session's seeds derive from both nonces.
public struct PoolSync: Equatable, Sendable {
    public var nonce: UInt64
    /// 0 in an offer; the offer's nonce in an answer.
    public var echo: UInt64
    public var held: [KeyID]

    public init(nonce: UInt64, echo: UInt64, held: [KeyID]) {
        self.nonce = nonce
        self.echo = echo
        self.held = held
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 20 + held.count * 16)
        w.u64(nonce)
        w.u64(echo)
        w.u32(UInt32(held.count))
        for id in held {
            w.u64(id.high)
            w.u64(id.low)
        }
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> PoolSync {
        var r = ByteReader(payload)
        let nonce = try r.u64(), echo = try r.u64()
        let n = Int(try r.u32())
        guard n * 16 == r.remaining else { throw WireError(.malformedPayload, "pool sync: \(n) key IDs do not fit in \(r.remaining) bytes") }
        var held: [KeyID] = []
        held.reserveCapacity(n)
        for _ in 0..<n { held.append(KeyID(high: try r.u64(), low: try r.u64())) }
        return PoolSync(nonce: nonce, echo: echo, held: held)
    }
}
