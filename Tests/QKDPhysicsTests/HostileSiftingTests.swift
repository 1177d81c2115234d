import QKDCore
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing

/// Malformed classical messages are refused with a clear error; the round is discarded and the
/// next round works.
@Suite struct HostileSiftingTests {
    let config = BB84Configuration(pulsesPerFrame: 1 << 20, blockSiftedSignalBits: 1 << 30, sampleFraction: 0.1,
                                   source: SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15))
    let seeds = SeedTree(root: 1)
    let eta = LinkPhysics(lengthKm: 10).transmittance

    func pair() -> (BB84Sender, BB84Receiver) {
        (BB84Sender(configuration: config, seeds: seeds),
         BB84Receiver(configuration: config, seeds: seeds, misalignment: 0.015, darkCountProbability: 1e-6))
    }

    func code(_ body: () throws -> Void) -> ProtocolError.Code? {
        do { try body(); return nil } catch let error as ProtocolError { return error.code } catch { return nil }
    }

    @Test func aliceRefusesBadAnnouncementsAndKeepsGoing() throws {
        var (alice, bob) = pair()
        let good = try bob.received(alice.nextFrame(transmittance: eta))
        #expect(good.offsets.count > 100)

        var bad = good
        bad.bases.removeLast()
        #expect(code { _ = try alice.received(bad) } == .lengthMismatch)
        // The frame was discarded: even the good announcement is now for an unknown round.
        #expect(code { _ = try alice.received(good) } == .unknownRound)

        let second = try bob.received(alice.nextFrame(transmittance: eta))
        var outside = second
        outside.offsets[outside.offsets.count - 1] = config.pulsesPerFrame
        #expect(code { _ = try alice.received(outside) } == .outOfRange)

        let third = try bob.received(alice.nextFrame(transmittance: eta))
        var unordered = third
        unordered.offsets.swapAt(0, 1)
        #expect(code { _ = try alice.received(unordered) } == .outOfRange)

        let fourth = try bob.received(alice.nextFrame(transmittance: eta))
        var badBasis = fourth
        badBasis.bases[0] = 7
        #expect(code { _ = try alice.received(badBasis) } == .invalidValue)

        // A fresh round still works end to end.
        let fifth = try bob.received(alice.nextFrame(transmittance: eta))
        let reply = try alice.received(fifth)
        #expect(reply.matches.count == fifth.offsets.count)
        // Bob still has the rounds Alice discarded pending; a reply to the new one works.
        #expect(try bob.received(reply) == nil)
    }

    @Test func bobRefusesRepliesThatDoNotMatchHisClicks() throws {
        var (alice, bob) = pair()
        let announcement = try bob.received(alice.nextFrame(transmittance: eta))
        var reply = try alice.received(announcement)
        reply.matches.removeLast()
        reply.classes.removeLast()
        #expect(code { _ = try bob.received(reply) } == .lengthMismatch)

        let a2 = try bob.received(alice.nextFrame(transmittance: eta))
        var r2 = try alice.received(a2)
        r2.classCounts[0] += 1
        #expect(code { _ = try bob.received(r2) } == .invalidValue)

        var ghost = r2
        ghost.frameIndex = 999
        #expect(code { _ = try bob.received(ghost) } == .unknownRound)
    }

    @Test func aliceRefusesARevealOfTheWrongLength() throws {
        var (alice, bob) = pair()
        alice.overrideBlockSize(1)
        let reply = try alice.received(bob.received(alice.nextFrame(transmittance: eta)))
        #expect(reply.closesBlock)
        var reveal = try #require(try bob.received(reply))
        reveal.bits.append(0)
        #expect(code { _ = try alice.received(reveal) } == .lengthMismatch)
    }

    @Test func wireDecodersRefuseInconsistentPayloads() {
        let frame = QuantumFrame(frameIndex: 1, frameStart: 0, pulses: 10, offsets: [3, 2], photons: [1, 1], states: [0, 1])
        #expect(throws: WireError.self) { try QuantumFrame.decode(frame.encoded()) }
        let outside = QuantumFrame(frameIndex: 1, frameStart: 0, pulses: 10, offsets: [10], photons: [1], states: [0])
        #expect(throws: WireError.self) { try QuantumFrame.decode(outside.encoded()) }
        let noPhoton = QuantumFrame(frameIndex: 1, frameStart: 0, pulses: 10, offsets: [1], photons: [0], states: [0])
        #expect(throws: WireError.self) { try QuantumFrame.decode(noPhoton.encoded()) }
        // A count that claims more items than the payload holds.
        var lying = SiftAnnouncement(frameIndex: 1, offsets: [1, 2], bases: [0, 1]).encoded()
        lying[11] = 200
        #expect(throws: WireError.self) { try SiftAnnouncement.decode(lying) }
        let reply = SiftReply(frameIndex: 1, matches: [1, 0], classes: [0, 3], classCounts: [1, 1, 0], closesBlock: false, sampleSeed: 0)
        #expect(throws: WireError.self) { try SiftReply.decode(reply.encoded()) }
        let result = EstimationResult(blockIndex: 0, pulses: [1, 1, 1], clicks: [2, 0, 0], sifted: [0, 0, 0], revealed: [0, 0, 0], errors: [0, 0, 0])
        #expect(throws: WireError.self) { try EstimationResult.decode(result.encoded()) }
    }
}

/// Sifting messages are authenticated through the block transcript: a tampered announcement
/// that passes every consistency check still makes the round's authentication fail.
@Suite struct SiftingTranscriptTests {
    func closedBlock(tamperFrame: UInt64?) throws -> (SiftedBlock, SiftedBlock) {
        let config = BB84Configuration(pulsesPerFrame: 1 << 22, blockSiftedSignalBits: 60_000, sampleFraction: 0.1,
                                       source: SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15))
        let seeds = SeedTree(root: 4).child("link/t")
        let key = KeyDistiller.authenticationKey(linkSeeds: seeds)
        var alice = BB84Sender(configuration: config, seeds: seeds, authenticationKey: key)
        var bob = BB84Receiver(configuration: config, seeds: seeds, misalignment: 0.015, darkCountProbability: 1e-6, authenticationKey: key)
        let eta = LinkPhysics(lengthKm: 20).transmittance
        for _ in 0..<200 {
            var announcement = try bob.received(alice.nextFrame(transmittance: eta))
            if announcement.frameIndex == tamperFrame { announcement.bases[3] ^= 1 }
            guard let reveal = try bob.received(alice.received(announcement)) else { continue }
            let (result, a) = try alice.received(reveal)
            return (a, try bob.received(result))
        }
        throw ProtocolError(.unknownRound, "no block closed")
    }

    @Test func digestsAgreeUnlessAMessageWasAltered() throws {
        let (a, b) = try closedBlock(tamperFrame: nil)
        #expect(a.transcriptDigest == b.transcriptDigest)
        #expect(a.transcriptDigest != 0)
        let (ta, tb) = try closedBlock(tamperFrame: 1)
        #expect(ta.statistics == tb.statistics, "the tampering passes the statistics cross-check")
        #expect(ta.transcriptDigest != tb.transcriptDigest)

        let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
        let seeds = SeedTree(root: 4).child("link/t")
        var pair = DistillationPair(configuration: DistillerConfiguration(source: source, ecEfficiency: 1.16), linkSeeds: seeds, session: 1)
        _ = pair.distil(alice: ta, bob: tb)
        #expect(pair.alice.counters.blocksFailedAuthentication == 1)
        #expect(pair.alice.counters.blocksDistilled == 0 && pair.bob.counters.blocksDistilled == 0)
    }
}
