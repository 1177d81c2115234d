import QKDCore
import QKDLink
import QKDNodeCore
import QKDTopology
import QKDTestKit
import QKDWire
import Testing

let lineTopology = TestTopologies.line3

func ms(_ value: UInt64) -> Instant { .ms(value) }

@Suite struct LinkMonitorTests {
    @Test func linkComesUpOnFirstFrameAndGoesDownAfterSilence() {
        var m = LinkMonitor(node: NodeID("B"), links: lineTopology.links, now: ms(0))
        #expect(m.records.count == 2)
        #expect(m.linksUp == 0)
        let up = m.received(link: LinkIndex(0), heartbeat: Heartbeat(incarnation: 1), at: ms(10))
        #expect(up.contains { if case .stateChanged(LinkIndex(0), .up, _) = $0 { true } else { false } })
        #expect(m.record(LinkIndex(0))?.state == .up)
        #expect(m.tick(at: ms(500)).allSatisfy { if case .stateChanged = $0 { false } else { true } })
        let down = m.tick(at: ms(1010))
        #expect(down.contains { if case .stateChanged(LinkIndex(0), .down, _) = $0 { true } else { false } })
        #expect(m.record(LinkIndex(0))?.state == .down)
    }

    @Test func aLinkThroughAnInterposerMayBeSilentThreeTimesAsLong() {
        var m = LinkMonitor(node: NodeID("B"), links: lineTopology.links, now: ms(0))
        _ = m.received(link: LinkIndex(0), heartbeat: Heartbeat(incarnation: 1), at: ms(10))
        _ = m.received(link: LinkIndex(1), heartbeat: Heartbeat(incarnation: 1), at: ms(10))
        m.interposed(LinkIndex(0), true)
        #expect(m.nextDeadline().map { $0 <= ms(1010) } == true)  // the direct link's timeout
        let early = m.tick(at: ms(1500))
        #expect(m.record(LinkIndex(0))?.state == .up && m.record(LinkIndex(1))?.state == .down)
        #expect(!early.contains { if case .stateChanged(LinkIndex(0), _, _) = $0 { true } else { false } })
        _ = m.tick(at: ms(3009))
        #expect(m.record(LinkIndex(0))?.state == .up)
        _ = m.tick(at: ms(3010))
        #expect(m.record(LinkIndex(0))?.state == .down)
        // Out again: the usual timeout.
        _ = m.received(link: LinkIndex(0), heartbeat: Heartbeat(incarnation: 1), at: ms(4000))
        m.interposed(LinkIndex(0), false)
        _ = m.tick(at: ms(5000))
        #expect(m.record(LinkIndex(0))?.state == .down)
    }

    /// A node whose own loop stalled does not take its links down for frames it has not read
    /// yet: silence counts up to the last instant it listened. Once it has listened past the
    /// timeout with nothing heard, the link goes down.
    @Test func aStallOfTheNodeItselfIsNotThePeersSilence() {
        var m = LinkMonitor(node: NodeID("B"), links: lineTopology.links, now: ms(0))
        _ = m.received(link: LinkIndex(0), heartbeat: Heartbeat(incarnation: 1), at: ms(10))
        m.listened(at: ms(100))
        // The loop stalled from 100 ms to 3 s: frames may wait in its socket.
        #expect(m.tick(at: ms(3000)).allSatisfy { if case .stateChanged = $0 { false } else { true } })
        #expect(m.record(LinkIndex(0))?.state == .up)
        // It drained its socket (nothing from the peer there) and listened until 3 s.
        m.listened(at: ms(3000))
        let down = m.tick(at: ms(3001))
        #expect(down.contains { if case .stateChanged(LinkIndex(0), .down, let reason) = $0 { reason.contains("2990 ms") } else { false } })
    }

    @Test func heartbeatsAreDueEveryInterval() {
        var m = LinkMonitor(node: NodeID("A"), links: lineTopology.links, now: ms(0))
        func beats(_ d: [LinkMonitor.Directive]) -> Int { d.filter { if case .sendHeartbeat = $0 { true } else { false } }.count }
        #expect(beats(m.tick(at: ms(0))) == 1)
        #expect(beats(m.tick(at: ms(150))) == 0)
        #expect(m.nextDeadline() == ms(200))
        #expect(beats(m.tick(at: ms(200))) == 1)
        // A stall longer than several intervals yields one heartbeat, not a burst.
        #expect(beats(m.tick(at: ms(5000))) == 1)
    }

    @Test func goodbyeTakesTheLinkDownAtOnceAndRestartIsNoticed() {
        var m = LinkMonitor(node: NodeID("C"), links: lineTopology.links, now: ms(0))
        _ = m.received(link: LinkIndex(1), heartbeat: Heartbeat(incarnation: 1), at: ms(1))
        #expect(m.goodbye(link: LinkIndex(1)).count == 1)
        #expect(m.record(LinkIndex(1))?.state == .down)
        let back = m.received(link: LinkIndex(1), heartbeat: Heartbeat(incarnation: 2), at: ms(2))
        #expect(back.contains(.peerRestarted(link: LinkIndex(1), previous: 1, current: 2)))
        #expect(m.allUp)
    }

    @Test func framesOnForeignLinksChangeNothing() {
        var m = LinkMonitor(node: NodeID("A"), links: lineTopology.links, now: ms(0))
        #expect(m.received(link: LinkIndex(1), heartbeat: nil, at: ms(1)).isEmpty)
        #expect(m.received(link: LinkIndex(9), heartbeat: nil, at: ms(1)).isEmpty)
        #expect(m.linksUp == 0)
    }
}

@Suite struct NodeCoreTests {
    func core(_ node: String) -> NodeCore {
        NodeCore(configuration: .init(node: NodeID(node), topology: lineTopology, pid: 1, incarnation: 99), now: ms(0))
    }

    func heartbeat(link: UInt32, sequence: UInt64 = 0) -> [UInt8] {
        Envelope(kind: .heartbeat, link: LinkIndex(link), sequence: sequence, payload: Heartbeat(incarnation: 5).encoded()).encoded()
    }

    @Test func readyOnceWhenAllLinksAreUp() {
        var b = core("B")
        _ = b.receive(frame: heartbeat(link: 0), from: NodeID("A"), at: ms(1))
        #expect(b.tick(at: ms(2)).ready == nil)
        _ = b.receive(frame: heartbeat(link: 1), from: NodeID("C"), at: ms(3))
        #expect(b.tick(at: ms(4)).ready == NodeCore.Readiness(linksUp: 2, linksTotal: 2))
        #expect(b.tick(at: ms(5)).ready == nil)
        #expect(b.isReady)
    }

    @Test func aFirstHeartbeatBringsTheLinkUpAndStartsItsSession() {
        var b = core("B")
        let out = b.receive(frame: heartbeat(link: 0), from: NodeID("A"), at: ms(1))
        #expect(out.effects.quantum == [.linkUp(LinkIndex(0))])
        #expect(out.effects.logs.map(\.message) == ["link up"] && out.relay == nil && out.effects.sends.isEmpty)
        // A relay message from the peer goes to the relay agent, after nothing else.
        let lsa = Envelope(kind: .linkState, link: LinkIndex(0), sequence: 1, payload: [1, 2]).encoded()
        let relayed = b.receive(frame: lsa, from: NodeID("A"), at: ms(2))
        #expect(relayed.relay == NodeCore.RelayMessage(kind: .linkState, payload: [1, 2], from: NodeID("A")))
        #expect(relayed.effects == NodeCore.Effects())
    }

    @Test func hostileFramesAreCountedAndChangeNothing() {
        var b = core("B")
        let before = b.monitor.records
        let hostile: [(NodeID, [UInt8], WireError.Code)] = [
            (NodeID("A"), [1, 2, 3], .truncated),
            (NodeID("A"), Array(heartbeat(link: 0).dropLast()), .lengthMismatch),
            (NodeID("C"), heartbeat(link: 0), .unexpectedSender),      // C claims A's link
            (NodeID("A"), heartbeat(link: 7), .unknownLink),
            (NodeID("A"), Envelope(kind: .heartbeat, link: LinkIndex(0), sequence: 0, payload: [1]).encoded(), .truncated),
            (NodeID("A"), Envelope(kind: .ping, link: LinkIndex(0), sequence: 1, payload: [1, 2, 3, 4, 5, 6, 7, 8, 9]).encoded(), .malformedPayload),
        ]
        for (sender, bytes, code) in hostile {
            let out = b.receive(frame: bytes, from: sender, at: ms(1))
            #expect(out.relay == nil && out.effects.sends.isEmpty && out.effects.quantum.isEmpty && out.effects.answers.isEmpty, "\(code)")
            guard out.effects.logs.count == 1, let line = out.effects.logs.first, line.level == .warning else {
                Issue.record("expected one warning for \(code), got \(out)")
                continue
            }
            #expect(line.metadata["reason"]?.hasPrefix(code.rawValue) == true, "\(code): \(line.metadata)")
        }
        #expect(b.monitor.records == before)
        #expect(b.rejected[.truncated] == 2)
        #expect(b.rejected[.unexpectedSender] == 1)
        #expect(b.rejected[.unknownLink] == 1)
        #expect(b.rejected.values.reduce(0, +) == UInt64(hostile.count))
        let status = b.status(at: ms(2))
        #expect(status.rejectedFrames["truncated"] == 2)
    }

    @Test func pingAnswersWithPongAndPingerMeasuresRoundTrip() throws {
        var a = core("A")
        var b = core("B")
        let request = ControlCodec.encode(ControlRequest.ping(link: "A-B", count: 2))
        let started = a.control(client: [7], request: request, at: ms(10))
        #expect(started.action == .none && started.effects.answers.isEmpty)
        var effects = started.effects
        for round in 0..<2 {
            guard let ping = effects.sends.first, ping.peer == NodeID("B") else {
                Issue.record("round \(round): expected a ping to B, got \(effects)")
                return
            }
            let answer = b.receive(frame: ping.frame, from: NodeID("A"), at: ms(11))
            guard let pong = answer.effects.sends.last, pong.peer == NodeID("A") else {
                Issue.record("expected a pong, got \(answer)")
                return
            }
            effects = a.receive(frame: pong.frame, from: NodeID("B"), at: ms([12, 15][round])).effects
        }
        guard let reply = effects.answers.first, reply.client == [7] else {
            Issue.record("expected the ping report, got \(effects)")
            return
        }
        let report = try #require(try ControlCodec.decode(ControlReply.self, from: reply.bytes).ping)
        #expect(report.roundTripsMicroseconds == [2000, 3000])
        #expect(report.lost == 0)
    }

    @Test func controlErrorsAreAnsweredNotFatal() throws {
        var a = core("A")
        for request in [Array("not json".utf8), ControlCodec.encode(ControlRequest.ping(link: "B-C", count: ControlRequest.defaultPingCount))] {
            let out = a.control(client: [1], request: request, at: ms(1))
            guard let reply = out.effects.answers.first, reply.client == [1], out.action == .none, !out.stop else {
                Issue.record("expected an error reply, got \(out)")
                continue
            }
            #expect(try ControlCodec.decode(ControlReply.self, from: reply.bytes).error != nil)
        }
    }

    @Test func controlRequestsTheCoreCannotAnswerGoToTheShell() {
        var a = core("A")
        func outcome(_ request: ControlRequest) -> NodeCore.ControlOutcome { a.control(client: [3], request: ControlCodec.encode(request), at: ms(1)) }
        #expect(outcome(.pools).action == .replyPools)
        #expect(outcome(.keyDigests(link: "A-B", salt: 4)).action == .replyDigests(link: "A-B", salt: 4))
        #expect(outcome(.relay(to: "C", bits: 256)).action == .relay(.relay(to: "C", bits: 256)))
        let splice = outcome(.splice(link: "A-B", via: .init(endpoint: "inproc://eve", key: "K", transmittance: 0.5)))
        #expect(splice.action == .splice(link: LinkIndex(0), peer: NodeID("B"), via: .init(endpoint: "inproc://eve", key: "K", id: NodeID("eve:A-B")),
                                         transmittance: 0.5))
        #expect(splice.effects.answers.isEmpty, "answered by the shell once the splice is done")
        let shutdown = outcome(.shutdown)
        #expect(shutdown.stop && shutdown.effects.answers.count == 1 && shutdown.effects.sends.map(\.peer) == [NodeID("B")])
    }

    @Test func stopSaysGoodbyeOnEveryLinkOnce() {
        var b = core("B")
        let out = b.stop(at: ms(1))
        let goodbyes = out.sends.compactMap { t -> NodeID? in (try? Envelope.decode(t.frame))?.kind == .goodbye ? t.peer : nil }
        #expect(Set(goodbyes) == [NodeID("A"), NodeID("C")] && goodbyes.count == out.sends.count)
        #expect(b.stop(at: ms(2)) == NodeCore.Effects())
        #expect(b.status(at: ms(3)).state == .stopping)
    }
}
