import QKDCore
import QKDKeyPool
import QKDPhysics
import QKDPostProcessing
import QKDWire
import Testing

/// Malformed classical messages are refused with a clear error; the round is discarded and the
/// next round works.
@Suite struct HostileSiftingTests {
    let config = BB84Configuration(pulsesPerFrame: 1 << 20, blockKeyBits: 1 << 30,
                                   source: SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15), darkCountProbability: 1e-6)
    let seeds = SeedTree(root: 1)
    let eta = LinkPhysics(lengthKm: 10).transmittance

    func pair() -> (BB84Sender, BB84Receiver) {
        (BB84Sender(configuration: config, seeds: seeds, secrecy: .secret),
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
        let reply = SiftReply(frameIndex: 1, blockIndex: 0, matches: [1, 0], classes: [0, 3], classCounts: [1, 1, 0], closesBlock: false)
        #expect(throws: WireError.self) { try SiftReply.decode(reply.encoded()) }
        let result = EstimationResult(blockIndex: 0, pulses: [1, 1, 1], clicks: [2, 0, 0], sifted: [0, 0, 0], revealed: [0, 0, 0], errors: [0, 0, 0])
        #expect(throws: WireError.self) { try EstimationResult.decode(result.encoded()) }
    }
}

/// Sifting messages are authenticated through the block transcript: a tampered announcement
/// that passes every consistency check still makes the round's authentication fail.
@Suite struct SiftingTranscriptTests {
    func closedBlock(tamperFrame: UInt64?) throws -> (SiftedBlock, SiftedBlock) {
        let config = BB84Configuration(pulsesPerFrame: 1 << 22, blockKeyBits: 60_000,
                                       source: SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15), darkCountProbability: 1e-6)
        let seeds = SeedTree(root: 4).child("link/t")
        let key = LinkBootstrap.derived(linkSeeds: seeds).authenticationKey
        var alice = BB84Sender(configuration: config, seeds: seeds, secrecy: .secret, authenticationKey: key)
        var bob = BB84Receiver(configuration: config, seeds: seeds, misalignment: 0.015, darkCountProbability: 1e-6, authenticationKey: key)
        let eta = LinkPhysics(lengthKm: 20).transmittance
        for _ in 0..<200 {
            var announcement = try bob.received(alice.nextFrame(transmittance: eta))
            if announcement.frameIndex == tamperFrame {
                // Flip the basis of a click in matching bases: both ends then drop it (the
                // statistics still agree), only the transcript shows the change.
                var probe = alice
                let matches = try probe.received(announcement).matches
                let i = try #require(matches.firstIndex(of: 1))
                announcement.bases[i] ^= 1
            }
            guard let reveal = try bob.received(alice.received(announcement)) else { continue }
            let (result, a) = try alice.received(reveal)
            return (a, try bob.received(result))
        }
        throw ProtocolError(.unknownRound, "no block closed")
    }

    @Test func digestsAgreeUnlessAMessageWasAltered() throws {
        let (a, b) = try closedBlock(tamperFrame: nil)
        let (da, db) = (try #require(a.transcript).finalize(), try #require(b.transcript).finalize())
        #expect(da == db)
        #expect(da != 0)
        let (ta, tb) = try closedBlock(tamperFrame: 1)
        #expect(ta.statistics == tb.statistics, "the tampering passes the statistics cross-check")
        #expect(ta.transcript?.finalize() != tb.transcript?.finalize())

        let source = SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15)
        let seeds = SeedTree(root: 4).child("link/t")
        var pair = DistillationPair(configuration: DistillerConfiguration(source: source, ecEfficiency: 1.16).withAsymptoticBound(), linkSeeds: seeds, session: 1, secrecy: .secret)
        _ = pair.distil(alice: ta, bob: tb)
        #expect(pair.alice.counters.blocksFailedAuthentication == 1)
        #expect(pair.alice.counters.blocksDistilled == 0 && pair.bob.counters.blocksDistilled == 0)
    }
}

/// Bob follows Alice's block numbering: a block flag altered or a reply lost on the way costs
/// the block it falls in, and the blocks after it close at both ends with the same statistics.
@Suite struct SiftingResynchronisationTests {
    enum Fault { case forgeClose, loseClosingReply }

    /// Runs frames until `wanted` blocks finished at both ends; `fault` hits the reply of frame 3
    /// (a forged close, in the middle of block 0) or the first reply that closes a block (lost).
    func run(_ fault: Fault, wanted: Int) throws -> (finished: [(SiftedBlock, SiftedBlock)], refused: Int, resynchronised: Int) {
        let config = BB84Configuration(pulsesPerFrame: 1 << 21, blockKeyBits: 100_000,
                                       source: SourceSettings(signal: 0.5, decoy: 0.1, signalProbability: 0.7, decoyProbability: 0.15, vacuumProbability: 0.15), darkCountProbability: 1e-6)
        let seeds = SeedTree(root: 9).child("link/r")
        var alice = BB84Sender(configuration: config, seeds: seeds, secrecy: .secret)
        var bob = BB84Receiver(configuration: config, seeds: seeds, misalignment: 0.015, darkCountProbability: 1e-6)
        let eta = LinkPhysics(lengthKm: 20).transmittance
        var finished: [(SiftedBlock, SiftedBlock)] = []
        var refused = 0
        var faulted = false
        for _ in 0..<400 where finished.count < wanted {
            let announcement = try bob.received(alice.nextFrame(transmittance: eta))
            var reply = try alice.received(announcement)
            switch fault {
            case .forgeClose where reply.frameIndex == 3:
                #expect(!reply.closesBlock, "a block of 100,000 sifted signal bits takes several frames")
                reply.closesBlock = true
                faulted = true
            case .loseClosingReply where reply.closesBlock && !faulted:
                faulted = true
                continue
            default: break
            }
            guard let reveal = try bob.received(reply) else { continue }
            do {
                let (result, a) = try alice.received(reveal)
                finished.append((a, try bob.received(result)))
            } catch {
                refused += 1
            }
        }
        #expect(faulted)
        return (finished, refused, bob.blocksResynchronised)
    }

    func expectTheSameBlocks(_ finished: [(SiftedBlock, SiftedBlock)]) {
        for (a, b) in finished {
            #expect(a.index == b.index && a.statistics == b.statistics && a.key.count == b.key.count, "block \(a.index)")
            var differ = 0
            for i in 0..<min(a.key.count, b.key.count) where a.key.bits[i] != b.key.bits[i] { differ += 1 }
            #expect(Double(differ) < 0.05 * Double(a.key.count), "block \(a.index): \(differ) of \(a.key.count) bits differ")
        }
    }

    @Test func aForgedBlockFlagCostsOneBlock() throws {
        let (finished, refused, resynchronised) = try run(.forgeClose, wanted: 3)
        #expect(finished.count == 3, "blocks after the forged flag still finish")
        #expect(refused >= 1, "the early reveal is refused")
        #expect(resynchronised >= 1)
        #expect(finished.first?.0.index == 1, "block 0 is the one lost")
        expectTheSameBlocks(finished)
    }

    @Test func aLostClosingReplyCostsOneBlock() throws {
        let (finished, _, resynchronised) = try run(.loseClosingReply, wanted: 3)
        #expect(finished.count == 3)
        #expect(resynchronised == 1)
        #expect(finished.map(\.0.index) == [1, 2, 3], "block 0 is the one lost")
        expectTheSameBlocks(finished)
    }
}
