import QKDCore
import QKDLink
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// A node's link channel without a network: framing, sequence numbers, checks on arrival, and
/// the injected faults both ways.
@Suite struct LinkChannelTests {
    static let topology = TestTopologies.line3
    static let ab = topology.link(named: "A-B")!.index
    static let bc = topology.link(named: "B-C")!.index
    static let t0 = Instant(nanoseconds: 1_000_000_000)

    /// B's channel (both links end there).
    static func channel(seed: UInt64 = 1) -> LinkChannel {
        LinkChannel(node: NodeID("B"), links: topology.links(of: NodeID("B")), faultSeed: seed)
    }

    /// A frame A sends B on A-B.
    static func fromA(_ kind: MessageKind, payload: [UInt8] = [1, 2, 3], sequence: UInt64 = 9) -> [UInt8] {
        Envelope(kind: kind, link: ab, sequence: sequence, payload: payload).encoded()
    }

    /// A frame of `pulses` pulses, every one carrying `photons` photons.
    static func quantum(pulses: Int, photons: UInt8) -> QuantumFrame {
        QuantumFrame(frameIndex: 1, frameStart: 0, pulses: UInt32(pulses), offsets: (0..<UInt32(pulses)).map { $0 },
                     photons: Array(repeating: photons, count: pulses), states: (0..<pulses).map { UInt8($0 % 4) })
    }

    @Test func framesCarryTheLinkAndOneSequencePerLinkToItsPeer() throws {
        var c = Self.channel()
        let sent = [c.send(.heartbeat, [7], on: Self.ab, at: Self.t0), c.send(.cascadeRequest, [8], on: Self.ab, at: Self.t0),
                    c.send(.relayForward, [9], toNeighbour: NodeID("C"), at: Self.t0)]
        let first = try #require(sent[0]), second = try #require(sent[1]), other = try #require(sent[2])
        #expect(first.peer == NodeID("A") && other.peer == NodeID("C"))
        let e1 = try Envelope.decode(first.frame), e2 = try Envelope.decode(second.frame), e3 = try Envelope.decode(other.frame)
        #expect((e1.kind, e1.link, e1.sequence, e1.payload) == (.heartbeat, Self.ab, 0, [7]))
        #expect((e2.kind, e2.sequence) == (.cascadeRequest, 1))
        #expect((e3.link, e3.sequence) == (Self.bc, 0))
        #expect(c.send(.heartbeat, [], on: LinkIndex(99), at: Self.t0) == nil, "not a link of B")
        #expect(c.send(.heartbeat, [], toNeighbour: NodeID("Z"), at: Self.t0) == nil, "not a neighbour of B")
    }

    /// Each sequence number is accepted once per link; reordering within the window is fine;
    /// replays, and frames older than the window, are refused (and change nothing).
    @Test func replayedAndStaleFramesAreRefused() {
        var c = Self.channel()
        func arrival(_ sequence: UInt64, on link: LinkIndex = Self.ab, from sender: String = "A") -> LinkChannel.Arrival {
            let frame = Envelope(kind: .cascadeReply, link: link, sequence: sequence, payload: [1]).encoded()
            return c.receive(frame, from: NodeID(sender))
        }
        func accepted(_ a: LinkChannel.Arrival) -> Bool { if case .accepted = a { true } else { false } }
        func replayed(_ a: LinkChannel.Arrival) -> Bool { if case .rejected(let e) = a { e.code == .replayed } else { false } }
        #expect(accepted(arrival(5000)))
        #expect(replayed(arrival(5000)), "the same frame twice")
        #expect(replayed(arrival(5000, from: "eve:A-B")), "replayed by the interposer")
        #expect(accepted(arrival(4990)), "reordered within the window")
        #expect(replayed(arrival(4990)))
        #expect(accepted(arrival(5001)) && accepted(arrival(7000)))
        #expect(accepted(arrival(7000 - ReplayWindow.size + 1)))
        #expect(replayed(arrival(7000 - ReplayWindow.size)), "older than the window")
        #expect(replayed(arrival(5001)))
        // Another link has a window of its own.
        #expect(accepted(Self.channelFrame(c: &c, 5000, on: Self.bc, from: "C")))
        // A restarted sender numbers from its start time, above everything it sent before.
        #expect(accepted(arrival(1_800_000_000_000_000_000)))
        #expect(replayed(arrival(7000)))
        // A frame numbered far ahead (a malicious neighbour) shuts the peer's genuine frames
        // out until the link goes down and its numbers are forgotten; the other link keeps its own.
        #expect(accepted(arrival(UInt64.max - 1)))
        #expect(replayed(arrival(1_800_000_000_000_000_001)))
        c.forgetSequences(Self.ab)
        #expect(accepted(arrival(1_800_000_000_000_000_001)) && accepted(arrival(1_800_000_000_000_000_002)))
        #expect(replayed(Self.channelFrame(c: &c, 5000, on: Self.bc, from: "C")), "the other link's window is kept")
    }

    static func channelFrame(c: inout LinkChannel, _ sequence: UInt64, on link: LinkIndex, from sender: String) -> LinkChannel.Arrival {
        c.receive(Envelope(kind: .cascadeReply, link: link, sequence: sequence, payload: [1]).encoded(), from: NodeID(sender))
    }

    @Test func replayWindowMatchesASetOfSeenNumbersWithinItsSize() {
        var window = ReplayWindow()
        var seen: Set<UInt64> = []
        var highest: UInt64 = 0
        var g = Xoshiro256(seed: 5)
        for _ in 0..<20_000 {
            let sequence = 10_000 + g.nextBounded(3000) + highest / 2
            let expected = !seen.contains(sequence) && (seen.isEmpty || sequence + ReplayWindow.size > highest)
            #expect(window.accept(sequence) == expected, "sequence \(sequence), highest \(highest)")
            if expected {
                seen.insert(sequence)
                highest = max(highest, sequence)
            }
        }
    }

    @Test func arrivalsAreCheckedForLinkAndSender() {
        var c = Self.channel()
        #expect(c.receive(Self.fromA(.heartbeat), from: NodeID("A")) == .accepted(try! Envelope.decode(Self.fromA(.heartbeat))))
        // The link's interposer may send on it; another node may not, nor on a link not of B.
        if case .accepted = c.receive(Self.fromA(.heartbeat, sequence: 10), from: NodeID("eve:A-B")) {} else { Issue.record("interposer refused") }
        guard case .rejected(let wrongSender) = c.receive(Self.fromA(.heartbeat), from: NodeID("C")) else { Issue.record("C accepted"); return }
        #expect(wrongSender.code == .unexpectedSender && wrongSender.message.contains("A-B"))
        guard case .rejected(let wrongLink) = c.receive(Envelope(kind: .heartbeat, link: LinkIndex(99), sequence: 0, payload: []).encoded(),
                                                        from: NodeID("A")) else { Issue.record("link 99 accepted"); return }
        #expect(wrongLink.code == .unknownLink)
        guard case .rejected(let garbage) = c.receive([0x51, 0x4B, 1], from: NodeID("A")) else { Issue.record("garbage accepted"); return }
        #expect(garbage.code != .unknownLink)
        guard case .rejected = c.receive(Self.fromA(.heartbeat), from: NodeID("eve:B-C")) else { Issue.record("B-C's interposer on A-B"); return }
    }

    @Test func noFaultPassesEverythingUnchanged() throws {
        var c = Self.channel()
        for (i, kind) in [MessageKind.heartbeat, .quantumFrame, .cascadeRequest].enumerated() {
            #expect(c.send(kind, [1], on: Self.ab, at: Self.t0) != nil)
            let frame = Self.fromA(kind, sequence: UInt64(i))
            #expect(c.receive(frame, from: NodeID("A")) == .accepted(try Envelope.decode(frame)))
        }
        #expect(c.faults.active.isEmpty && c.nextDue == nil)
    }

    @Test func aCutDropsEveryKindBothWaysOnItsLinkOnly() {
        var c = Self.channel()
        c.setFault(Self.ab, .init(cut: true))
        for kind in [MessageKind.heartbeat, .quantumFrame, .relayForward, .poolSync] {
            #expect(c.send(kind, [1], on: Self.ab, at: Self.t0) == nil)
            #expect(c.receive(Self.fromA(kind), from: NodeID("A")) == .dropped)
        }
        #expect(c.faults.dropped[Self.ab] == 8)
        #expect(c.send(.heartbeat, [1], on: Self.bc, at: Self.t0) != nil)
        #expect(c.faults.fault(Self.ab).words == ["cut"])
        // The sequence numbers of dropped frames are spent (the peer sees a gap, as on a fibre).
        let after = c.send(.heartbeat, [], on: Self.ab, at: Self.t0)
        #expect(after == nil)
        c.setFault(Self.ab, .init())
        #expect(try! Envelope.decode(c.send(.heartbeat, [], on: Self.ab, at: Self.t0)!.frame).sequence == 5)
    }

    @Test func aPartitionDropsClassicalKindsAndPassesQuantumFrames() {
        var c = Self.channel()
        c.setFault(Self.ab, .init(classicalCut: true))
        #expect(c.send(.heartbeat, [1], on: Self.ab, at: Self.t0) == nil)
        #expect(c.receive(Self.fromA(.siftAnnouncement), from: NodeID("A")) == .dropped)
        #expect(c.send(.quantumFrame, [1], on: Self.ab, at: Self.t0) != nil)
        #expect(c.receive(Self.fromA(.quantumFrame), from: NodeID("A")) != .dropped)
    }

    @Test func aDelayHoldsOutgoingClassicalFramesInOrderUntilDue() throws {
        var c = Self.channel()
        c.setFault(Self.ab, .init(delayNs: 25_000_000))
        #expect(c.send(.cascadeReply, [1], on: Self.ab, at: Self.t0) == nil)
        #expect(c.send(.cascadeReply, [2], on: Self.ab, at: Self.t0.advanced(byNanoseconds: 1_000_000)) == nil)
        #expect(c.send(.quantumFrame, [3], on: Self.ab, at: Self.t0) != nil, "quantum frames are not delayed")
        #expect(c.receive(Self.fromA(.cascadeReply), from: NodeID("A")) != .dropped, "arrivals are not delayed here")
        #expect(c.nextDue == Self.t0.advanced(byNanoseconds: 25_000_000))
        #expect(c.due(at: Self.t0.advanced(byNanoseconds: 24_999_999)).isEmpty)
        let first = c.due(at: Self.t0.advanced(byNanoseconds: 25_000_000))
        #expect(try first.map { try Envelope.decode($0.frame).payload } == [[1]])
        let second = c.due(at: Self.t0.advanced(byNanoseconds: 40_000_000))
        #expect(try second.map { try Envelope.decode($0.frame).payload } == [[2]] && second.first?.peer == NodeID("A"))
        #expect(c.nextDue == nil)
        #expect(c.faults.fault(Self.ab).words == ["delay 25.0 ms"])
    }

    @Test func healRestoresTheLinkAndHealAllEveryLink() {
        var c = Self.channel()
        c.setFault(Self.ab, .init(cut: true))
        c.setFault(Self.bc, .init(classicalCut: true))
        c.setFault(Self.ab, .init())
        #expect(c.send(.heartbeat, [], on: Self.ab, at: Self.t0) != nil)
        #expect(c.faults.active.keys.sorted() == [Self.bc])
        c.healAll()
        #expect(c.faults.active.isEmpty)
        #expect(c.send(.heartbeat, [], on: Self.bc, at: Self.t0) != nil)
    }

    @Test func lossThinsArrivingPhotonsBinomially() throws {
        var c = Self.channel(seed: 42)
        c.setFault(Self.ab, .init(extraLossDb: 3))
        let sent = Self.quantum(pulses: 20_000, photons: 2)
        guard case .accepted(let envelope) = c.receive(Self.fromA(.quantumFrame, payload: sent.encoded()), from: NodeID("A")) else {
            Issue.record("the frame did not arrive")
            return
        }
        #expect(envelope.kind == .quantumFrame && envelope.link == Self.ab && envelope.sequence == 9)
        let thinned = try QuantumFrame.decode(envelope.payload)
        // Each photon survives with t = 10^-0.3 ≈ 0.501: a pulse of 2 keeps 0 with (1-t)^2,
        // 1 with 2t(1-t), 2 with t^2; empty pulses are removed.
        let t = 0.501187
        let kept1 = thinned.photons.filter { $0 == 1 }.count, kept2 = thinned.photons.filter { $0 == 2 }.count
        let n = 20_000.0
        #expect(abs(Double(kept1) - n * 2 * t * (1 - t)) < 5 * (n * 0.5 * 0.5).squareRoot())
        #expect(abs(Double(kept2) - n * t * t) < 5 * (n * 0.25 * 0.75).squareRoot())
        #expect(thinned.photons.allSatisfy { $0 >= 1 })
        #expect(thinned.offsets == thinned.offsets.sorted())
        // Surviving pulses keep their offsets and states.
        for (i, offset) in thinned.offsets.enumerated() { #expect(thinned.states[i] == sent.states[Int(offset)]) }
        #expect(thinned.pulses == sent.pulses && thinned.frameIndex == sent.frameIndex)
        // Classical frames are not touched by loss, nor are frames leaving.
        let heartbeat = Self.fromA(.heartbeat, sequence: 1_000_000)
        #expect(c.receive(heartbeat, from: NodeID("A")) == .accepted(try Envelope.decode(heartbeat)))
        let leaving = c.send(.quantumFrame, sent.encoded(), on: Self.ab, at: Self.t0)
        let out = try #require(leaving)
        #expect(try Envelope.decode(out.frame).payload == sent.encoded())
    }

    @Test func lossIsReproducibleForOneSeed() {
        let sent = Self.fromA(.quantumFrame, payload: Self.quantum(pulses: 1000, photons: 3).encoded())
        func run(_ seed: UInt64) -> LinkChannel.Arrival {
            var c = Self.channel(seed: seed)
            c.setFault(Self.ab, .init(extraLossDb: 6))
            return c.receive(sent, from: NodeID("A"))
        }
        #expect(run(7) == run(7))
        #expect(run(7) != run(8))
    }
}
