import QKDCore
import QKDWire

/// What an eavesdropper process does with each frame it carries between a link's two ends,
/// as a pure instance: frames from the `a` end go to `b` and back; Alice's quantum frames are
/// attacked, the public sifting messages are read, post-processing messages may be altered.
/// A frame Eve cannot parse is passed on unread (the node refuses it); a frame for another
/// link, or from anyone but the two ends, is dropped.
public struct Interposer: Sendable {
    public let link: LinkIndex
    public let a: NodeID
    public let b: NodeID
    public private(set) var eve: Eavesdropper
    private var unreadable: UInt64 = 0
    private var forwarded: UInt64 = 0

    public init(link: LinkIndex, a: NodeID, b: NodeID, eve: Eavesdropper) {
        self.link = link
        self.a = a
        self.b = b
        self.eve = eve
    }

    public var report: EavesdropperReport {
        var r = eve.report
        r.framesUnreadable = unreadable
        r.framesForwarded = forwarded
        return r
    }

    /// The frame to send on and to which end, or nil to drop it.
    public mutating func carry(_ bytes: [UInt8], from sender: NodeID) -> (to: NodeID, frame: [UInt8])? {
        guard sender == a || sender == b else {
            unreadable += 1
            return nil
        }
        let to = sender == a ? b : a
        guard let envelope = try? Envelope.decode(bytes) else {
            unreadable += 1
            forwarded += 1
            return (to, bytes)
        }
        guard envelope.link == link else {
            unreadable += 1
            return nil
        }
        forwarded += 1
        var payload: [UInt8]?
        switch envelope.kind {
        case .quantumFrame where sender == a:
            if let frame = try? QuantumFrame.decode(envelope.payload) { payload = eve.intercept(frame).encoded() }
        case .siftAnnouncement where sender == b:
            if let announcement = try? SiftAnnouncement.decode(envelope.payload) { eve.observe(announcement) }
        case .siftReply where sender == a:
            if let reply = try? SiftReply.decode(envelope.payload) { eve.observe(reply) }
        default:
            payload = eve.tamper(envelope.kind, envelope.payload)
        }
        guard let payload else { return (to, bytes) }
        return (to, Envelope(kind: envelope.kind, link: envelope.link, sequence: envelope.sequence, payload: payload).encoded())
    }
}
