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

@Suite struct ZMQTransportTests {
    @Test func peersExchangeFramesAndControlRequestsAreAnswered() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try ZMQNodeTransport(node: NodeID("A"), peerEndpoint: "ipc://\(dir)/A.peer", controlEndpoint: "ipc://\(dir)/A.ctl",
                                     neighbours: [(NodeID("B"), "ipc://\(dir)/B.peer")], stopFD: nil)
        let b = try ZMQNodeTransport(node: NodeID("B"), peerEndpoint: "ipc://\(dir)/B.peer", controlEndpoint: "ipc://\(dir)/B.ctl",
                                     neighbours: [(NodeID("A"), "ipc://\(dir)/A.peer")], stopFD: nil)
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
        let b = try ZMQNodeTransport(node: NodeID("B"), peerEndpoint: "ipc://\(dir)/B.peer", controlEndpoint: "ipc://\(dir)/B.ctl",
                                     neighbours: [], stopFD: nil)
        defer { b.close() }
        let context = ZMQContext()
        let rogue = try ZMQSocket(context: context, kind: .dealer)
        try rogue.setOption(ZMQ_ROUTING_ID, bytes: Array("A".utf8))
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

    @Test func runLayoutRejectsTooLongSocketPaths() throws {
        let topology = try QKDTopologyFixture.line()
        let deep = "/tmp/" + String(repeating: "d", count: 120)
        #expect(RunLayout(root: deep).validateEndpoints(for: topology)?.contains("too deep") == true)
        #expect(RunLayout(root: "/tmp/x").validateEndpoints(for: topology) == nil)
    }
}
