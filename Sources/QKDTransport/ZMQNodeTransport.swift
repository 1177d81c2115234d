import CZeroMQ
import QKDCore

/// The CURVE keys of one node's channels: its own pair, the public key of each neighbour (the
/// only keys its peer socket admits, each as that neighbour) and the control clients' keys.
public struct ChannelKeys: Sendable {
    public let own: CurveKeyPair
    public let neighbours: [NodeID: String]
    public let control: [String]

    public init(own: CurveKeyPair, neighbours: [NodeID: String], control: [String]) {
        self.own = own
        self.neighbours = neighbours
        self.control = control
    }
}

/// The production transport. One ROUTER socket receives every neighbour's frames (each
/// neighbour connects a DEALER) and a second ROUTER serves control requests. Every connection
/// is a CURVE session (`ChannelKeys`): the ZAP handler admits on the peer socket only the
/// neighbours' keys (and an interposer's while it is spliced), on the control socket only the
/// control keys, and a frame's sender is the node whose key its connection proved, never an id
/// the client chose. Everything lives on the thread that created it.
public final class ZMQNodeTransport: NodeTransport {
    /// Frames larger than this close the sending connection inside libzmq (64 MiB).
    public static let maxMessageSize: Int64 = 64 << 20

    private let context: ZMQContext
    private let zap: ZAPHandler
    private let peerSocket: ZMQSocket
    private let controlSocket: ZMQSocket
    private let keys: ChannelKeys
    private var outgoing: [NodeID: ZMQSocket] = [:]
    /// Per neighbour whose link has an interposer: the DEALER to it (used instead of `outgoing`).
    private var spliced: [NodeID: (socket: ZMQSocket, key: String)] = [:]
    private let node: NodeID
    private let wakeFDs: [Int32]
    private let waker = PipeWaker()

    /// Binds `peerEndpoint` and `controlEndpoint`, connects one DEALER per neighbour.
    /// `wakeFD` (optional) is polled too; when readable, `wait` reports `.stopRequested`.
    /// Fails if this libzmq has no CURVE.
    public init(node: NodeID, peerEndpoint: String, controlEndpoint: String,
                neighbours: [(id: NodeID, endpoint: String)], keys: ChannelKeys, stopFD: Int32?) throws(ZMQError) {
        guard CurveKeyPair.isAvailable else {
            throw ZMQError(operation: "zmq_has(\"curve\")", reason: "this libzmq (\(zmqVersion())) was built without CURVE; install Debian's libzmq3-dev (built with libsodium)")
        }
        self.node = node
        self.keys = keys
        context = ZMQContext()
        zap = try ZAPHandler(context: context)
        for (id, key) in keys.neighbours { zap.admit(key, as: id.rawValue, in: ZAPHandler.peerDomain) }
        for key in keys.control { zap.admit(key, as: "control", in: ZAPHandler.controlDomain) }
        peerSocket = try ZMQSocket(context: context, kind: .router)
        try peerSocket.setOption(ZMQ_MAXMSGSIZE, ZMQNodeTransport.maxMessageSize)
        try peerSocket.makeCurveServer(keys.own, domain: ZAPHandler.peerDomain)
        try peerSocket.bind(peerEndpoint)
        controlSocket = try ZMQSocket(context: context, kind: .router)
        try controlSocket.setOption(ZMQ_MAXMSGSIZE, Int64(1 << 20))
        try controlSocket.makeCurveServer(keys.own, domain: ZAPHandler.controlDomain)
        try controlSocket.bind(controlEndpoint)
        for (id, endpoint) in neighbours {
            guard let serverKey = keys.neighbours[id] else {
                throw ZMQError(operation: "connect \(endpoint)", reason: "no CURVE public key for neighbour \(id)")
            }
            outgoing[id] = try ZMQNodeTransport.dealer(context: context, keys: keys.own, serverKey: serverKey, endpoint: endpoint)
        }
        wakeFDs = [waker.readFD] + (stopFD.map { [$0] } ?? [])
    }

    /// A DEALER connected to `endpoint` as a CURVE client of the server with `serverKey`. With
    /// `immediate` it queues nothing for an absent peer (`IMMEDIATE`: a neighbour that is down
    /// loses what is sent to it, as a fibre would); without, messages wait (up to the
    /// high-water mark) until the connection is made, so nothing sent while an interposer's
    /// connection is being set up is lost.
    public static func dealer(context: ZMQContext, keys: CurveKeyPair, serverKey: String, endpoint: String,
                              immediate: Bool = true) throws(ZMQError) -> ZMQSocket {
        let dealer = try ZMQSocket(context: context, kind: .dealer)
        try dealer.makeCurveClient(keys, serverKey: serverKey)
        if immediate { try dealer.setOption(ZMQ_IMMEDIATE, Int32(1)) }
        try dealer.setOption(ZMQ_SNDHWM, Int32(10_000))
        try dealer.setOption(ZMQ_RECONNECT_IVL, Int32(50))
        try dealer.setOption(ZMQ_RECONNECT_IVL_MAX, Int32(500))
        try dealer.connect(endpoint)
        return dealer
    }

    public func splice(_ peer: NodeID, through interposer: InterposerEndpoint?) -> String? {
        guard outgoing[peer] != nil else { return "'\(peer)' is not a neighbour" }
        if let old = spliced.removeValue(forKey: peer) {
            old.socket.close()
            zap.revoke(old.key, in: ZAPHandler.peerDomain)
        }
        guard let interposer else { return nil }
        guard CurveKeyPair.isKey(interposer.key) else { return "the interposer's CURVE key is not a 40-character Z85 key" }
        do {
            let socket = try ZMQNodeTransport.dealer(context: context, keys: keys.own, serverKey: interposer.key,
                                                     endpoint: interposer.endpoint, immediate: false)
            spliced[peer] = (socket, interposer.key)
            zap.admit(interposer.key, as: interposer.id.rawValue, in: ZAPHandler.peerDomain)
            return nil
        } catch {
            return "cannot connect to the interposer at \(interposer.endpoint): \(error)"
        }
    }

    public func makeWaker() -> any Waker { waker }

    @discardableResult
    public func send(_ frame: [UInt8], to peer: NodeID) -> Bool {
        guard let socket = spliced[peer]?.socket ?? outgoing[peer] else { return false }
        return socket.send([frame])
    }

    public func reply(_ bytes: [UInt8], to client: [UInt8]) {
        controlSocket.send([client, bytes])
    }

    public func wait(timeoutMs: Int) -> [TransportEvent] {
        var timeout = timeoutMs
        if let deadline = zap.nextDeadlineNs {
            let now = monotonicNanoseconds()
            timeout = min(timeout, deadline > now ? Int((deadline - now) / 1_000_000) + 1 : 0)
        }
        let ready = zmqPoll(sockets: [peerSocket, controlSocket, zap.pollSocket], fds: wakeFDs, timeoutMs: timeout)
        var events: [TransportEvent] = []
        if ready.contains(4) { events.append(.stopRequested) }
        if ready.contains(3) {
            waker.drain()
            events.append(.wake)
        }
        for refusal in zap.handle() {
            events.append(.refused(reason: "\(refusal.domain) handshake from '\(refusal.address)' refused: \(refusal.reason) (CURVE key \(refusal.key))"))
        }
        // Drain a bounded batch from each socket so neither starves the other.
        for _ in 0..<256 {
            guard let (parts, truncated, user) = peerSocket.receiveMessage(maxParts: 2) else { break }
            if truncated || parts.count != 2 {
                events.append(.malformed(reason: "peer message has \(truncated ? "more than 2" : String(parts.count)) parts, expected routing id and frame"))
                continue
            }
            guard let user else {
                events.append(.malformed(reason: "peer message on a connection without an authenticated key"))
                continue
            }
            events.append(.peer(from: NodeID(user), frame: parts[1]))
        }
        for _ in 0..<64 {
            guard let (parts, truncated, user) = controlSocket.receiveMessage(maxParts: 2) else { break }
            guard !truncated, parts.count == 2 else {
                events.append(.malformed(reason: "control message must be one frame"))
                continue
            }
            guard user == "control" else {
                events.append(.malformed(reason: "control message on a connection without the control key"))
                continue
            }
            events.append(.control(client: parts[0], request: parts[1]))
        }
        return events
    }

    public func close() {
        for socket in outgoing.values { socket.close() }
        for (socket, _) in spliced.values { socket.close() }
        outgoing.removeAll()
        spliced.removeAll()
        peerSocket.close()
        controlSocket.close()
        zap.close()
    }
}
