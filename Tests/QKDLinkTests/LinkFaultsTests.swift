import QKDCore
import QKDLink
import QKDWire
import Testing

/// Faults decided per frame from the envelope header, without a network.
@Suite struct LinkFaultsTests {
    static let link = LinkIndex(3)
    static let other = LinkIndex(4)

    static func frame(_ kind: MessageKind, link: LinkIndex = link, payload: [UInt8] = [1, 2, 3]) -> [UInt8] {
        Envelope(kind: kind, link: link, sequence: 9, payload: payload).encoded()
    }

    /// A frame of `pulses` pulses, every one carrying `photons` photons.
    static func quantum(pulses: Int, photons: UInt8) -> QuantumFrame {
        QuantumFrame(frameIndex: 1, frameStart: 0, pulses: UInt32(pulses), offsets: (0..<UInt32(pulses)).map { $0 },
                     photons: Array(repeating: photons, count: pulses), states: (0..<pulses).map { UInt8($0 % 4) })
    }

    @Test func noFaultPassesEverythingUnchanged() {
        var f = LinkFaults(seed: 1)
        for kind in [MessageKind.heartbeat, .quantumFrame, .cascadeRequest] {
            #expect(f.outgoing(Self.frame(kind)) == .send)
            #expect(f.incoming(Self.frame(kind)) == Self.frame(kind))
        }
        #expect(f.active.isEmpty)
    }

    @Test func aCutDropsEveryKindBothWaysOnItsLinkOnly() {
        var f = LinkFaults(seed: 1)
        f.set(Self.link, .init(cut: true))
        for kind in [MessageKind.heartbeat, .quantumFrame, .relayForward, .poolSync] {
            #expect(f.outgoing(Self.frame(kind)) == .drop)
            #expect(f.incoming(Self.frame(kind)) == nil)
        }
        #expect(f.dropped[Self.link] == 8)
        #expect(f.outgoing(Self.frame(.heartbeat, link: Self.other)) == .send)
        #expect(f.incoming(Self.frame(.heartbeat, link: Self.other)) != nil)
        #expect(f.fault(Self.link).words == ["cut"])
    }

    @Test func aPartitionDropsClassicalKindsAndPassesQuantumFrames() {
        var f = LinkFaults(seed: 1)
        f.set(Self.link, .init(classicalCut: true))
        #expect(f.outgoing(Self.frame(.heartbeat)) == .drop)
        #expect(f.incoming(Self.frame(.siftAnnouncement)) == nil)
        #expect(f.outgoing(Self.frame(.quantumFrame)) == .send)
        #expect(f.incoming(Self.frame(.quantumFrame)) == Self.frame(.quantumFrame))
    }

    @Test func aDelayHoldsOutgoingClassicalFramesOnly() {
        var f = LinkFaults(seed: 1)
        f.set(Self.link, .init(delayNs: 25_000_000))
        #expect(f.outgoing(Self.frame(.cascadeReply)) == .delay(25_000_000))
        #expect(f.outgoing(Self.frame(.quantumFrame)) == .send)
        #expect(f.incoming(Self.frame(.cascadeReply)) == Self.frame(.cascadeReply))
        #expect(f.fault(Self.link).words == ["delay 25.0 ms"])
    }

    @Test func healRestoresTheLinkAndHealAllEveryLink() {
        var f = LinkFaults(seed: 1)
        f.set(Self.link, .init(cut: true))
        f.set(Self.other, .init(classicalCut: true))
        f.set(Self.link, .init())
        #expect(f.outgoing(Self.frame(.heartbeat)) == .send)
        #expect(f.active.keys.sorted() == [Self.other])
        f.healAll()
        #expect(f.active.isEmpty)
        #expect(f.outgoing(Self.frame(.heartbeat, link: Self.other)) == .send)
    }

    @Test func lossThinsArrivingPhotonsBinomially() throws {
        var f = LinkFaults(seed: 42)
        f.set(Self.link, .init(extraLossDb: 3))
        let sent = Self.quantum(pulses: 20_000, photons: 2)
        let incoming = f.incoming(Self.frame(.quantumFrame, payload: sent.encoded()))
        let arrived = try #require(incoming)
        let envelope = try Envelope.decode(arrived)
        #expect(envelope.kind == .quantumFrame && envelope.link == Self.link && envelope.sequence == 9)
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
        // Classical frames are not touched by loss.
        #expect(f.incoming(Self.frame(.heartbeat)) == Self.frame(.heartbeat))
    }

    @Test func lossIsReproducibleForOneSeed() throws {
        let sent = Self.frame(.quantumFrame, payload: Self.quantum(pulses: 1000, photons: 3).encoded())
        func run(_ seed: UInt64) -> [UInt8]? {
            var f = LinkFaults(seed: seed)
            f.set(Self.link, .init(extraLossDb: 6))
            return f.incoming(sent)
        }
        #expect(run(7) == run(7))
        #expect(run(7) != run(8))
    }

    @Test func framesTooShortForAHeaderAreLeftToTheDecoder() {
        var f = LinkFaults(seed: 1)
        f.set(Self.link, .init(cut: true))
        #expect(f.incoming([0x51, 0x4B, 1]) == [0x51, 0x4B, 1])
        #expect(f.outgoing([0x51]) == .send)
    }
}
