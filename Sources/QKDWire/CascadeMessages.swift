/// One parity question of Cascade: the parity of Alice's bits at positions [start, start + length)
/// of pass `pass`'s order, or, with `length == 0`, the parities of every top-level block of
/// that pass.
public struct CascadeQuery: Equatable, Sendable, Hashable {
    public var pass: UInt8
    public var start: UInt32
    public var length: UInt32

    public init(pass: UInt8, start: UInt32, length: UInt32) {
        self.pass = pass
        self.start = start
        self.length = length
    }

    public static func topLevel(pass: Int) -> CascadeQuery { CascadeQuery(pass: UInt8(pass), start: 0, length: 0) }
}

/// Bob → Alice: the parities Bob needs next for reconciliation round `block`.
public struct CascadeRequest: Equatable, Sendable {
    public var block: UInt64
    public var queries: [CascadeQuery]

    public init(block: UInt64, queries: [CascadeQuery]) {
        self.block = block
        self.queries = queries
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 12 + queries.count * 9)
        w.u64(block)
        w.u32(UInt32(queries.count))
        for q in queries {
            w.u8(q.pass)
            w.u32(q.start)
            w.u32(q.length)
        }
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> CascadeRequest {
        var r = ByteReader(payload)
        let block = try r.u64()
        let count = Int(try r.u32())
        guard count * 9 == r.remaining else {
            throw WireError(.malformedPayload, "cascade request \(block): \(count) queries need \(count * 9) bytes, \(r.remaining) present")
        }
        var queries: [CascadeQuery] = []
        queries.reserveCapacity(count)
        for _ in 0..<count { queries.append(CascadeQuery(pass: try r.u8(), start: try r.u32(), length: try r.u32())) }
        return CascadeRequest(block: block, queries: queries)
    }
}

/// Alice → Bob: the parities asked for, in the order of the queries (a top-level query
/// expands to one bit per block of its pass).
public struct CascadeReply: Equatable, Sendable {
    public var block: UInt64
    public var parities: [UInt8]

    public init(block: UInt64, parities: [UInt8]) {
        self.block = block
        self.parities = parities
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 16 + parities.count / 8)
        w.u64(block)
        w.bitArray(parities)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> CascadeReply {
        var r = ByteReader(payload)
        let block = try r.u64()
        let parities = try r.bitArray("cascade reply")
        try r.expectEnd("cascade reply")
        return CascadeReply(block: block, parities: parities)
    }
}
