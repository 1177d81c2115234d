import QKDCore

/// What a frame on a peer channel carries. The decoder accepts only kinds listed here.
public enum MessageKind: UInt8, Sendable, CaseIterable {
    /// Liveness, sent on every link at a fixed interval. Payload: `Heartbeat`.
    case heartbeat = 1
    /// Round-trip probe. Payload: `Probe`.
    case ping = 2
    /// Answer to a ping, echoing its probe.
    case pong = 3
    /// Sent by a node that is shutting down, so its peers mark the link down at once.
    case goodbye = 4
    /// Photons of one frame in flight (`QuantumFrame`), on the link's quantum channel.
    case quantumFrame = 16
    /// Bob's click positions and bases (`SiftAnnouncement`).
    case siftAnnouncement = 17
    /// Alice's basis matches, pulse classes, class counts (`SiftReply`).
    case siftReply = 18
    /// Bob's bits at the positions revealed for estimation (`EstimationReveal`).
    case estimationReveal = 19
    /// The block's statistics (`EstimationResult`).
    case estimationResult = 20
    /// Cascade parity questions (`CascadeRequest`).
    case cascadeRequest = 21
    /// Cascade parities (`CascadeReply`).
    case cascadeReply = 22
    /// Verification hash and Bob's authentication tag (`ReconciliationDone`).
    case reconciliationDone = 23
    /// Outcome, final length and Alice's tag (`ReconciliationResult`).
    case reconciliationResult = 24
    /// The key IDs one end holds for the link, sent when the link comes up (`PoolSync`).
    case poolSync = 25
    /// A node's link states, flooded for routing (`LinkStateAdvertisement`).
    case linkState = 26
    /// Key relay, forward: the end-to-end key one-time-padded with the link's keys (`RelayForward`).
    case relayForward = 27
    /// Key relay, backward: every hop after the sender has prepared (`RelaySignal`).
    case relayAck = 28
    /// Key relay, forward: the destination may release the key (`RelaySignal`).
    case relayCommit = 29
    /// Key relay, backward: the destination released it (`RelaySignal`).
    case relayDone = 30
    /// Key relay, either way: void the relay (`RelaySignal`).
    case relayAbort = 31
}

/// The envelope of every peer frame. Layout (big-endian), 20 header bytes then the payload:
///
///     0   2  magic "QK"
///     2   1  protocol version
///     3   1  message kind
///     4   4  link index
///     8   8  sequence number (per link and direction)
///     16  4  payload length in bytes
///     20  …  payload
public struct Envelope: Equatable, Sendable {
    public static let magic: (UInt8, UInt8) = (0x51, 0x4B)
    public static let currentVersion: UInt8 = 1
    public static let headerSize = 20
    /// The largest payload a decoder accepts unless told otherwise (48 MiB: a frame of photons
    /// at the exit of Alice's source, where an eavesdropper may sit, holds up to ~8 M pulses).
    public static let defaultMaxPayload = 48 << 20

    public var version: UInt8
    public var kind: MessageKind
    public var link: LinkIndex
    public var sequence: UInt64
    public var payload: [UInt8]

    public init(kind: MessageKind, link: LinkIndex, sequence: UInt64, payload: [UInt8] = [],
                version: UInt8 = Envelope.currentVersion) {
        self.version = version
        self.kind = kind
        self.link = link
        self.sequence = sequence
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Envelope.headerSize + payload.count)
        out.append(Envelope.magic.0)
        out.append(Envelope.magic.1)
        out.append(version)
        out.append(kind.rawValue)
        out.appendBigEndian(link.rawValue)
        out.appendBigEndian(sequence)
        out.appendBigEndian(UInt32(payload.count))
        out.append(contentsOf: payload)
        return out
    }

    /// Decodes one frame. It MUST reject, never trap on, any byte string: short, long,
    /// wrong magic, unknown version or kind, a length field that disagrees with the frame,
    /// or a payload above `maxPayload`.
    public static func decode(_ bytes: some Collection<UInt8>, maxPayload: Int = defaultMaxPayload)
        throws(WireError) -> Envelope
    {
        var reader = ByteReader(Array(bytes))
        guard reader.remaining >= headerSize else {
            throw WireError(.truncated, "frame of \(reader.remaining) bytes is shorter than the \(headerSize)-byte header")
        }
        let m0 = try reader.u8(), m1 = try reader.u8()
        guard m0 == magic.0, m1 == magic.1 else {
            throw WireError(.badMagic, "bad magic 0x\(hex(m0))\(hex(m1))")
        }
        let version = try reader.u8()
        guard version == currentVersion else {
            throw WireError(.unsupportedVersion, "protocol version \(version) is not supported (this node speaks \(currentVersion))")
        }
        let rawKind = try reader.u8()
        guard let kind = MessageKind(rawValue: rawKind) else {
            throw WireError(.unknownKind, "unknown message kind \(rawKind)")
        }
        let link = LinkIndex(try reader.u32())
        let sequence = try reader.u64()
        let length = Int(try reader.u32())
        guard length <= maxPayload else {
            throw WireError(.oversized, "payload of \(length) bytes exceeds the limit of \(maxPayload)")
        }
        guard length == reader.remaining else {
            throw WireError(.lengthMismatch, "header announces \(length) payload bytes, frame carries \(reader.remaining)")
        }
        let payload = try reader.bytes(length)
        return Envelope(kind: kind, link: link, sequence: sequence, payload: payload, version: version)
    }
}

private func hex(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return s.count == 1 ? "0" + s : s
}
