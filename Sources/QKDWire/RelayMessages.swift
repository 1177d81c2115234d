import QKDCore

/// Who a relayed key is for, when an application asked for it through ETSI GS QKD 014: the
/// master SAE (at the source) and the slave SAE (at the destination), and how the end-to-end key
/// splits into application keys (`keyIDs.count` keys of `keySize` bits, in order).
public struct RelayApplication: Equatable, Sendable {
    public var master: String
    public var slave: String
    public var keySize: Int
    public var keyIDs: [KeyID]
    /// A hybrid key's ML-KEM-768 ciphertext and confirmation tag, from the master's KME to the
    /// slave's (`KEMExchange`): the trusted nodes carry it and cannot open it. Empty: QKD alone.
    public var capsule: [UInt8]

    /// The largest capsule (a 1,088-byte ciphertext and a 32-byte tag, with room).
    public static let maxCapsuleBytes = 2048

    public init(master: String, slave: String, keySize: Int, keyIDs: [KeyID], capsule: [UInt8] = []) {
        self.master = master
        self.slave = slave
        self.keySize = keySize
        self.keyIDs = keyIDs
        self.capsule = capsule
    }

    /// `hybrid` with a capsule, `qkd` without (what `relay show` reports as the key's kind).
    public var kind: String { capsule.isEmpty ? "qkd" : "hybrid" }
}

/// Key relay, forward, from `path[hop - 1]` to `path[hop]`: the keys of the link between them
/// that pad the end-to-end key (named by ID), and the padded key. From the source (hop 1) the
/// link's keys are the end-to-end key itself and `padded` is empty. `macKey` names one more key
/// of that link, which authenticates everything else of the message: `tag` is a one-time
/// Wegman–Carter tag over `authenticatedBytes` (`KeyRelay.tag`), so a bit flipped on the hop
/// voids the relay instead of changing the key delivered.
public struct RelayForward: Equatable, Sendable {
    /// Largest end-to-end key one relay carries (128 application keys of 8192 bits).
    public static let maxBits = 1 << 20
    public var relay: KeyID
    public var path: [String]
    public var hop: Int
    public var bits: Int
    public var keys: [KeyID]
    public var padded: [UInt64]
    public var application: RelayApplication?
    public var macKey: KeyID
    public var tag: UInt128

    public init(relay: KeyID, path: [String], hop: Int, bits: Int, keys: [KeyID], padded: [UInt64],
                application: RelayApplication? = nil, macKey: KeyID = KeyID(high: 0, low: 0), tag: UInt128 = 0) {
        self.relay = relay
        self.path = path
        self.hop = hop
        self.bits = bits
        self.keys = keys
        self.padded = padded
        self.application = application
        self.macKey = macKey
        self.tag = tag
    }

    /// The encoding, the tag last.
    public func encoded() -> [UInt8] {
        var bytes = authenticatedBytes
        var w = PayloadWriter(capacity: 16)
        w.u128(tag)
        bytes += w.bytes
        return bytes
    }

    /// Everything the tag authenticates: the encoding up to the tag.
    public var authenticatedBytes: [UInt8] {
        var w = PayloadWriter(capacity: 64 + path.count * 16 + keys.count * 16 + padded.count * 8)
        w.u64(relay.high)
        w.u64(relay.low)
        w.u32(UInt32(path.count))
        for node in path { w.shortString(node) }
        w.u32(UInt32(hop))
        w.u32(UInt32(bits))
        w.u32(UInt32(keys.count))
        for k in keys {
            w.u64(k.high)
            w.u64(k.low)
        }
        w.u64(macKey.high)
        w.u64(macKey.low)
        if let application {
            // 1: QKD alone; 2: with an ML-KEM capsule after the key IDs.
            w.u8(application.capsule.isEmpty ? 1 : 2)
            w.shortString(application.master)
            w.shortString(application.slave)
            w.u32(UInt32(application.keySize))
            w.u32(UInt32(application.keyIDs.count))
            for k in application.keyIDs {
                w.u64(k.high)
                w.u64(k.low)
            }
            if !application.capsule.isEmpty {
                w.u32(UInt32(application.capsule.count))
                w.raw(application.capsule)
            }
        } else {
            w.u8(0)
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
        for _ in 0..<n { path.append(try r.shortString("relay \(relay): a path node")) }
        let hop = Int(try r.u32()), bits = Int(try r.u32())
        guard hop >= 1, hop < n else { throw WireError(.malformedPayload, "relay \(relay): hop \(hop) outside a path of \(n) nodes") }
        guard bits > 0, bits % 8 == 0, bits <= maxBits else { throw WireError(.malformedPayload, "relay \(relay): \(bits) bits") }
        let k = Int(try r.u32())
        guard k <= 4096, k * 16 <= r.remaining else { throw WireError(.malformedPayload, "relay \(relay): \(k) keys do not fit") }
        var keys: [KeyID] = []
        for _ in 0..<k { keys.append(KeyID(high: try r.u64(), low: try r.u64())) }
        let macKey = KeyID(high: try r.u64(), low: try r.u64())
        var application: RelayApplication?
        switch try r.u8() {
        case 0:
            break
        case let flag where flag == 1 || flag == 2:
            let master = try r.shortString("relay \(relay): the master SAE")
            let slave = try r.shortString("relay \(relay): the slave SAE")
            let size = Int(try r.u32()), count = Int(try r.u32())
            guard size > 0, size % 8 == 0, count > 0, count * 16 <= r.remaining, size * count == bits else {
                throw WireError(.malformedPayload, "relay \(relay): \(count) application keys of \(size) bits in \(bits) bits")
            }
            var ids: [KeyID] = []
            for _ in 0..<count { ids.append(KeyID(high: try r.u64(), low: try r.u64())) }
            var capsule: [UInt8] = []
            if flag == 2 {
                let c = Int(try r.u32())
                guard c > 0, c <= RelayApplication.maxCapsuleBytes, c <= r.remaining else {
                    throw WireError(.malformedPayload, "relay \(relay): an ML-KEM capsule of \(c) bytes")
                }
                capsule = try r.bytes(c)
            }
            application = RelayApplication(master: master, slave: slave, keySize: size, keyIDs: ids, capsule: capsule)
        case let flag:
            throw WireError(.malformedPayload, "relay \(relay): application flag \(flag)")
        }
        let p = Int(try r.u32())
        guard p * 8 + 16 == r.remaining else { throw WireError(.malformedPayload, "relay \(relay): \(p) padded words and the tag do not fit") }
        var padded: [UInt64] = []
        for _ in 0..<p { padded.append(try r.u64()) }
        let tag = try r.u128()
        return RelayForward(relay: relay, path: path, hop: hop, bits: bits, keys: keys, padded: padded, application: application,
                            macKey: macKey, tag: tag)
    }
}

/// Key relay signals that carry only the relay's ID (ack, commit, done) or an ID and a reason
/// (abort).
/// Why a relay was voided, as its ends act on it: a relay the destination refused is not tried
/// again on another path (no path would change the answer); the others may be.
public enum RelayFailureCause: UInt8, Sendable, CaseIterable {
    /// Not a relay this node can start (path, size).
    case badRequest = 1
    /// A link of the path has too few keys.
    case noKeys
    /// A message from a node not next on the relay's path, or a path without that link.
    case outOfPlace
    case malformed
    /// The hop's authentication tag failed: the forward was altered or forged.
    case forged
    /// The destination cannot hold the keys for their slave SAE (its KME's bounds, a key ID
    /// already held).
    case refusedByDestination
    case timedOut
    /// A link of the path went down.
    case linkDown
}

public struct RelaySignal: Equatable, Sendable {
    public var relay: KeyID
    /// Why (an abort only; nil in the other signals).
    public var cause: RelayFailureCause?
    public var reason: String

    public init(relay: KeyID, cause: RelayFailureCause? = nil, reason: String = "") {
        self.relay = relay
        self.cause = cause
        self.reason = reason
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 25 + reason.utf8.count)
        w.u64(relay.high)
        w.u64(relay.low)
        w.u8(cause?.rawValue ?? 0)
        let text = Array(reason.utf8.prefix(1024))
        w.u32(UInt32(text.count))
        w.raw(text)
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> RelaySignal {
        var r = ByteReader(payload)
        let relay = KeyID(high: try r.u64(), low: try r.u64())
        let code = try r.u8()
        guard code == 0 || RelayFailureCause(rawValue: code) != nil else {
            throw WireError(.malformedPayload, "relay signal \(relay): unknown failure cause \(code)")
        }
        let n = Int(try r.u32())
        guard n == r.remaining, n <= 1024 else { throw WireError(.malformedPayload, "relay signal \(relay): reason of \(n) bytes does not fit") }
        let text = try r.bytes(n)
        return RelaySignal(relay: relay, cause: RelayFailureCause(rawValue: code), reason: String(decoding: text, as: UTF8.self))
    }
}
