import QKDCore

/// Key relay, forward, from `path[hop - 1]` to `path[hop]`: the keys of the link between them
/// that pad the end-to-end key (named by ID), and the padded key. From the source (hop 1) the
/// link's keys are the end-to-end key itself and `padded` is empty.
public struct RelayForward: Equatable, Sendable {
    public var relay: KeyID
    public var path: [String]
    public var hop: Int
    public var bits: Int
    public var keys: [KeyID]
    public var padded: [UInt64]

    public init(relay: KeyID, path: [String], hop: Int, bits: Int, keys: [KeyID], padded: [UInt64]) {
        self.relay = relay
        self.path = path
        self.hop = hop
        self.bits = bits
        self.keys = keys
        self.padded = padded
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 64 + path.count * 16 + keys.count * 16 + padded.count * 8)
        w.u64(relay.high)
        w.u64(relay.low)
        w.u32(UInt32(path.count))
        for node in path {
            let name = Array(node.utf8.prefix(255))
            w.u8(UInt8(name.count))
            w.raw(name)
        }
        w.u32(UInt32(hop))
        w.u32(UInt32(bits))
        w.u32(UInt32(keys.count))
        for k in keys {
            w.u64(k.high)
            w.u64(k.low)
        }
        w.u32(UInt32(padded.count))
        for v in padded { w.u64(v) }
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> RelayForward {
        var r = ByteReader(payload)
        let relay = KeyID(high: try r.u64(), low: try r.u64())
        let n = Int(try r.u32())
        guard n >= 2, n <= 1024 else { throw WireError(.malformedPayload, "relay \(relay): path of \(n) nodes") }
        var path: [String] = []
        for _ in 0..<n {
            let bytes = try r.bytes(Int(try r.u8()))
            guard let name = String(validating: bytes, as: UTF8.self), !name.isEmpty else {
                throw WireError(.malformedPayload, "relay \(relay): a path node is not a UTF-8 id")
            }
            path.append(name)
        }
        let hop = Int(try r.u32()), bits = Int(try r.u32())
        guard hop >= 1, hop < n else { throw WireError(.malformedPayload, "relay \(relay): hop \(hop) outside a path of \(n) nodes") }
        guard bits > 0, bits % 8 == 0, bits <= 1 << 16 else { throw WireError(.malformedPayload, "relay \(relay): \(bits) bits") }
        let k = Int(try r.u32())
        guard k <= 1024, k * 16 <= r.remaining else { throw WireError(.malformedPayload, "relay \(relay): \(k) keys do not fit") }
        var keys: [KeyID] = []
        for _ in 0..<k { keys.append(KeyID(high: try r.u64(), low: try r.u64())) }
        let p = Int(try r.u32())
        guard p * 8 == r.remaining else { throw WireError(.malformedPayload, "relay \(relay): \(p) padded words do not fit") }
        var padded: [UInt64] = []
        for _ in 0..<p { padded.append(try r.u64()) }
        return RelayForward(relay: relay, path: path, hop: hop, bits: bits, keys: keys, padded: padded)
    }
}

/// Key relay signals that carry only the relay's ID (ack, commit, done) or an ID and a reason
/// (abort).
public struct RelaySignal: Equatable, Sendable {
    public var relay: KeyID
    public var reason: String

    public init(relay: KeyID, reason: String = "") {
        self.relay = relay
        self.reason = reason
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 24 + reason.utf8.count)
        w.u64(relay.high)
        w.u64(relay.low)
        let text = Array(reason.utf8.prefix(1024))
        w.u32(UInt32(text.count))
        w.raw(text)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> RelaySignal {
        var r = ByteReader(payload)
        let relay = KeyID(high: try r.u64(), low: try r.u64())
        let n = Int(try r.u32())
        guard n == r.remaining, n <= 1024 else { throw WireError(.malformedPayload, "relay signal \(relay): reason of \(n) bytes does not fit") }
        let text = try r.bytes(n)
        return RelaySignal(relay: relay, reason: String(decoding: text, as: UTF8.self))
    }
}
