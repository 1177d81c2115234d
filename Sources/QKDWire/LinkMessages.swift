/// Payload of a heartbeat: who sends it and which incarnation of that process (a restarted
/// node has a new incarnation, so its peer can tell a restart from a pause).
public struct Heartbeat: Equatable, Sendable {
    public var incarnation: UInt64

    public init(incarnation: UInt64) { self.incarnation = incarnation }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.appendBigEndian(incarnation)
        return out
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> Heartbeat {
        var reader = ByteReader(payload)
        let incarnation = try reader.u64()
        try reader.expectEnd("heartbeat")
        return Heartbeat(incarnation: incarnation)
    }
}

/// Payload of a ping or pong: a nonce chosen by the pinger, echoed by the pong.
public struct Probe: Equatable, Sendable {
    public var nonce: UInt64

    public init(nonce: UInt64) { self.nonce = nonce }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.appendBigEndian(nonce)
        return out
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> Probe {
        var reader = ByteReader(payload)
        let nonce = try reader.u64()
        try reader.expectEnd("probe")
        return Probe(nonce: nonce)
    }
}
