import CZeroMQ
import QKDCore

/// The production transport. One ROUTER socket receives every neighbour's frames (each
/// neighbour connects a DEALER whose routing id is its node id) and a second ROUTER serves
/// control requests. Everything lives on the thread that created it.
public final class ZMQNodeTransport: NodeTransport {
    /// Frames larger than this close the sending connection inside libzmq (64 MiB).
    public static let maxMessageSize: Int64 = 64 << 20

    private let context: ZMQContext
    private let peerSocket: ZMQSocket
    private let controlSocket: ZMQSocket
    private var outgoing: [NodeID: ZMQSocket] = [:]
    /// Per neighbour whose link has an interposer: the DEALER to it (used instead of `outgoing`).
    private var spliced: [NodeID: ZMQSocket] = [:]
    private let node: NodeID
    private let wakeFDs: [Int32]
    private let waker = PipeWaker()

    /// Binds `peerEndpoint` and `controlEndpoint`, connects one DEALER per neighbour.
    /// `wakeFD` (optional) is polled too; when readable, `wait` reports `.stopRequested`.
    public init(node: NodeID, peerEndpoint: String, controlEndpoint: String,
                neighbours: [(id: NodeID, endpoint: String)], stopFD: Int32?) throws(ZMQError) {
        self.node = node
        context = ZMQContext()
        peerSocket = try ZMQSocket(context: context, kind: .router)
        try peerSocket.setOption(ZMQ_ROUTER_HANDOVER, Int32(1))
        try peerSocket.setOption(ZMQ_MAXMSGSIZE, ZMQNodeTransport.maxMessageSize)
        try peerSocket.bind(peerEndpoint)
        controlSocket = try ZMQSocket(context: context, kind: .router)
        try controlSocket.setOption(ZMQ_MAXMSGSIZE, Int64(1 << 20))
        try controlSocket.bind(controlEndpoint)
        for (id, endpoint) in neighbours {
            outgoing[id] = try ZMQNodeTransport.dealer(context: context, routingID: node.rawValue, endpoint: endpoint)
        }
        wakeFDs = [waker.readFD] + (stopFD.map { [$0] } ?? [])
    }

    /// A DEALER connected to `endpoint`. With `immediate` it queues nothing for an absent peer
    /// (`IMMEDIATE`: a neighbour that is down loses what is sent to it, as a fibre would);
    /// without, messages wait (up to the high-water mark) until the connection is made, so
    /// nothing sent while an interposer's connection is being set up is lost.
    public static func dealer(context: ZMQContext, routingID: String, endpoint: String, immediate: Bool = true) throws(ZMQError) -> ZMQSocket {
        let dealer = try ZMQSocket(context: context, kind: .dealer)
        try dealer.setOption(ZMQ_ROUTING_ID, bytes: Array(routingID.utf8))
        if immediate { try dealer.setOption(ZMQ_IMMEDIATE, Int32(1)) }
        try dealer.setOption(ZMQ_SNDHWM, Int32(10_000))
        try dealer.setOption(ZMQ_RECONNECT_IVL, Int32(50))
        try dealer.setOption(ZMQ_RECONNECT_IVL_MAX, Int32(500))
        try dealer.connect(endpoint)
        return dealer
    }

    public func splice(_ peer: NodeID, through endpoint: String?) -> String? {
        guard outgoing[peer] != nil else { return "'\(peer)' is not a neighbour" }
        spliced.removeValue(forKey: peer)?.close()
        guard let endpoint else { return nil }
        do {
            spliced[peer] = try ZMQNodeTransport.dealer(context: context, routingID: node.rawValue, endpoint: endpoint, immediate: false)
            return nil
        } catch {
            return "cannot connect to the interposer at \(endpoint): \(error)"
        }
    }

    public func makeWaker() -> any Waker { waker }

    @discardableResult
    public func send(_ frame: [UInt8], to peer: NodeID) -> Bool {
        guard let socket = spliced[peer] ?? outgoing[peer] else { return false }
        return socket.send([frame])
    }

    public func reply(_ bytes: [UInt8], to client: [UInt8]) {
        controlSocket.send([client, bytes])
    }

    public func wait(timeoutMs: Int) -> [TransportEvent] {
        let ready = zmqPoll(sockets: [peerSocket, controlSocket], fds: wakeFDs, timeoutMs: timeoutMs)
        var events: [TransportEvent] = []
        if ready.contains(3) { events.append(.stopRequested) }
        if ready.contains(2) {
            waker.drain()
            events.append(.wake)
        }
        // Drain a bounded batch from each socket so neither starves the other.
        for _ in 0..<256 {
            guard let (parts, truncated) = peerSocket.receive(maxParts: 2) else { break }
            if truncated || parts.count != 2 {
                events.append(.malformed(reason: "peer message has \(truncated ? "more than 2" : String(parts.count)) parts, expected routing id and frame"))
                continue
            }
            guard let sender = String(validating: parts[0], as: UTF8.self) else {
                events.append(.malformed(reason: "peer routing id is not UTF-8"))
                continue
            }
            events.append(.peer(from: NodeID(sender), frame: parts[1]))
        }
        for _ in 0..<64 {
            guard let (parts, truncated) = controlSocket.receive(maxParts: 2) else { break }
            guard !truncated, parts.count == 2 else {
                events.append(.malformed(reason: "control message must be one frame"))
                continue
            }
            events.append(.control(client: parts[0], request: parts[1]))
        }
        return events
    }

    public func close() {
        for socket in outgoing.values { socket.close() }
        for socket in spliced.values { socket.close() }
        outgoing.removeAll()
        spliced.removeAll()
        peerSocket.close()
        controlSocket.close()
    }
}
