import CZeroMQ
import Foundation
import QKDCore
import QKDTransport
import Testing

func temporaryDirectory() -> String {
    let path = "/tmp/qkdnet-t-\(UInt32.random(in: 0...UInt32.max))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Waits on `transport` until `match` accepts an event or `seconds` pass.
func nextEvent(_ transport: any NodeTransport, seconds: Double = 3, _ match: (TransportEvent) -> Bool) -> TransportEvent? {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if let event = transport.wait(timeoutMs: 50).first(where: match) { return event }
    }
    return nil
}

/// Key pairs of two nodes A and B and a control client.
struct TestKeys {
    let a = try! CurveKeyPair.generate()
    let b = try! CurveKeyPair.generate()
    let control = try! CurveKeyPair.generate()

    func of(_ node: String, neighbours: [String]) -> ChannelKeys {
        let all = ["A": a, "B": b]
        return ChannelKeys(own: all[node]!, neighbours: Dictionary(uniqueKeysWithValues: neighbours.map { (NodeID($0), all[$0]!.publicKey) }),
                           control: [control.publicKey])
    }
}

@Suite struct ZMQTransportTests {
    @Test func peersExchangeFramesAndControlRequestsAreAnswered() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = TestKeys()
        let a = try ZMQNodeTransport(node: NodeID("A"), peerEndpoint: "ipc://\(dir)/A.peer", controlEndpoint: "ipc://\(dir)/A.ctl",
                                     neighbours: [(NodeID("B"), "ipc://\(dir)/B.peer")], keys: keys.of("A", neighbours: ["B"]), stopFD: nil)
        let b = try ZMQNodeTransport(node: NodeID("B"), peerEndpoint: "ipc://\(dir)/B.peer", controlEndpoint: "ipc://\(dir)/B.ctl",
                                     neighbours: [(NodeID("A"), "ipc://\(dir)/A.peer")], keys: keys.of("B", neighbours: ["A"]), stopFD: nil)
        defer { a.close(); b.close() }

        // The DEALER drops frames until its connection completes: resend until one arrives.
        let deadline = Date(timeIntervalSinceNow: 3)
        var got: TransportEvent?
        while got == nil && Date() < deadline {
            a.send([1, 2, 3], to: NodeID("B"))
            got = b.wait(timeoutMs: 20).first
        }
        #expect(got == .peer(from: NodeID("A"), frame: [1, 2, 3]))
        #expect(!a.send([9], to: NodeID("Z")))

        let context = ZMQContext()
        let client = try ZMQSocket(context: context, kind: .dealer)
        try client.makeCurveClient(keys.control, serverKey: keys.b.publicKey)
        try client.connect("ipc://\(dir)/B.ctl")
        client.send([Array("hello".utf8)])
        let request = nextEvent(b) { if case .control = $0 { true } else { false } }
        guard case .control(let address, let body) = request else {
            Issue.record("no control request arrived")
            return
        }
        #expect(body == Array("hello".utf8))
        b.reply(Array("world".utf8), to: address)
        #expect(zmqPoll(sockets: [client], fds: [], timeoutMs: 3000) == [0])
        #expect(client.receive()?.parts == [Array("world".utf8)])
        client.close()
    }

    @Test func malformedMultipartMessagesAreReportedNotDelivered() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = TestKeys()
        let b = try ZMQNodeTransport(node: NodeID("B"), peerEndpoint: "ipc://\(dir)/B.peer", controlEndpoint: "ipc://\(dir)/B.ctl",
                                     neighbours: [], keys: keys.of("B", neighbours: ["A"]), stopFD: nil)
        defer { b.close() }
        let context = ZMQContext()
        // A holds its key (an authenticated but malicious neighbour).
        let rogue = try ZMQSocket(context: context, kind: .dealer)
        try rogue.makeCurveClient(keys.a, serverKey: keys.b.publicKey)
        try rogue.connect("ipc://\(dir)/B.peer")
        rogue.send([[1], [2], [3]])
        let event = nextEvent(b) { _ in true }
        guard case .malformed(let reason) = event else {
            Issue.record("expected .malformed, got \(String(describing: event))")
            return
        }
        #expect(reason.contains("parts"))
        rogue.close()
    }

    /// Without the neighbour's key nothing arrives, whatever routing id the client claims: the
    /// handshake is refused (held first, for an interposer not yet admitted) and counted; the
    /// sender of a frame is the key's node, not the routing id; the control socket admits only
    /// the control key.
    @Test func onlyAdmittedKeysGetThroughAndTheSenderIsTheKeysNode() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = TestKeys()
        let b = try ZMQNodeTransport(node: NodeID("B"), peerEndpoint: "ipc://\(dir)/B.peer", controlEndpoint: "ipc://\(dir)/B.ctl",
                                     neighbours: [], keys: keys.of("B", neighbours: ["A"]), stopFD: nil)
        defer { b.close() }
        let context = ZMQContext()
        // A stranger with a key of its own, claiming A's routing id, on the control socket.
        let stranger = try CurveKeyPair.generate()
        let intruder = try ZMQSocket(context: context, kind: .dealer)
        try intruder.setOption(ZMQ_ROUTING_ID, bytes: Array("A".utf8))
        try intruder.makeCurveClient(stranger, serverKey: keys.b.publicKey)
        try intruder.connect("ipc://\(dir)/B.ctl")
        intruder.send([Array("shutdown".utf8)])
        // Plain (no CURVE) on the peer socket: the handshake fails in libzmq, nothing arrives.
        let plain = try ZMQSocket(context: context, kind: .dealer)
        try plain.setOption(ZMQ_ROUTING_ID, bytes: Array("A".utf8))
        try plain.connect("ipc://\(dir)/B.peer")
        plain.send([[0x51, 0x4b]])
        let refusal = nextEvent(b) { if case .refused = $0 { true } else { false } }
        guard case .refused(let reason) = refusal else {
            Issue.record("the stranger on the control socket was not refused: \(String(describing: refusal))")
            return
        }
        #expect(reason.contains("control") && reason.contains(stranger.publicKey))
        #expect(!reason.contains(stranger.secretKey))

        // A's key with Mallory's routing id: the frame is A's.
        let a = try ZMQSocket(context: context, kind: .dealer)
        try a.setOption(ZMQ_ROUTING_ID, bytes: Array("Mallory".utf8))
        try a.makeCurveClient(keys.a, serverKey: keys.b.publicKey)
        try a.connect("ipc://\(dir)/B.peer")
        a.send([[7, 7]])
        let arrived = nextEvent(b) { if case .peer = $0 { true } else { false } }
        #expect(arrived == .peer(from: NodeID("A"), frame: [7, 7]))
        // Nothing else ever arrived as a peer frame or control request.
        let rest = (0..<10).flatMap { _ in b.wait(timeoutMs: 20) }
        #expect(!rest.contains { if case .peer = $0 { true } else if case .control = $0 { true } else { false } })

        // An interposer's key is held until a splice admits it, then her frames are hers.
        let eveKeys = try CurveKeyPair.generate()
        let eve = try ZMQSocket(context: context, kind: .dealer)
        try eve.makeCurveClient(eveKeys, serverKey: keys.b.publicKey)
        try eve.connect("ipc://\(dir)/B.peer")
        eve.send([[9]])
        #expect(nextEvent(b, seconds: 0.3) { if case .peer = $0 { true } else { false } } == nil)
        // (B has no neighbour A in its transport here: splice to a neighbour it has.)
        let b2 = try ZMQNodeTransport(node: NodeID("B2"), peerEndpoint: "ipc://\(dir)/B2.peer", controlEndpoint: "ipc://\(dir)/B2.ctl",
                                      neighbours: [(NodeID("A"), "ipc://\(dir)/A.peer")], keys: keys.of("B", neighbours: ["A"]), stopFD: nil)
        defer { b2.close() }
        let eve2 = try ZMQSocket(context: context, kind: .dealer)
        try eve2.makeCurveClient(eveKeys, serverKey: keys.b.publicKey)
        try eve2.connect("ipc://\(dir)/B2.peer")
        eve2.send([[9]])
        #expect(nextEvent(b2, seconds: 0.3) { if case .peer = $0 { true } else { false } } == nil)
        let spliced = b2.splice(NodeID("A"), through: InterposerEndpoint(endpoint: "ipc://\(dir)/eve.peer", key: eveKeys.publicKey, id: NodeID("eve:A-B")))
        #expect(spliced == nil)
        #expect(nextEvent(b2) { if case .peer = $0 { true } else { false } } == .peer(from: NodeID("eve:A-B"), frame: [9]))
        for socket in [intruder, plain, a, eve, eve2] { socket.close() }
    }

    @Test func runLayoutRejectsTooLongSocketPaths() throws {
        let topology = try QKDTopologyFixture.line()
        let deep = "/tmp/" + String(repeating: "d", count: 120)
        #expect(RunLayout(root: deep).validateEndpoints(for: topology)?.contains("too deep") == true)
        #expect(RunLayout(root: "/tmp/x").validateEndpoints(for: topology) == nil)
    }
}
