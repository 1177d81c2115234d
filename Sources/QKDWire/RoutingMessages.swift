import QKDCore

/// One node's view of its own links, flooded to every node (link-state routing): for each
/// link, whether it is up as this end sees it, whether it is compromised, and how many keys
/// this end's pool has available outside the authentication reserve. `sequence` grows with
/// every advertisement of the origin; an older or equal one is ignored.
public struct LinkStateAdvertisement: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var link: LinkIndex
        public var up: Bool
        public var compromised: Bool
        public var availableKeys: UInt32

        public init(link: LinkIndex, up: Bool, compromised: Bool = false, availableKeys: UInt32) {
            self.link = link
            self.up = up
            self.compromised = compromised
            self.availableKeys = availableKeys
        }
    }

    public var origin: String
    public var sequence: UInt64
    public var links: [Entry]

    public init(origin: String, sequence: UInt64, links: [Entry]) {
        self.origin = origin
        self.sequence = sequence
        self.links = links
    }

    public func encoded() -> [UInt8] {
        var w = PayloadWriter(capacity: 16 + origin.utf8.count + links.count * 9)
        w.shortString(origin)
        w.u64(sequence)
        w.u32(UInt32(links.count))
        for e in links {
            w.u32(e.link.rawValue)
            w.u8((e.up ? 1 : 0) | (e.compromised ? 2 : 0))
            w.u32(e.availableKeys)
        }
        return w.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(WireError) -> LinkStateAdvertisement {
        var r = ByteReader(payload)
        let origin = try r.shortString("link-state advertisement: origin")
        let sequence = try r.u64()
        let n = Int(try r.u32())
        guard n * 9 == r.remaining else { throw WireError(.malformedPayload, "link-state advertisement from \(origin): \(n) links do not fit") }
        var links: [Entry] = []
        for _ in 0..<n {
            let link = LinkIndex(try r.u32())
            let flags = try r.u8()
            guard flags & ~3 == 0 else { throw WireError(.malformedPayload, "link-state advertisement from \(origin): unknown flags \(flags)") }
            links.append(Entry(link: link, up: flags & 1 != 0, compromised: flags & 2 != 0, availableKeys: try r.u32()))
        }
        return LinkStateAdvertisement(origin: origin, sequence: sequence, links: links)
    }
}
