import QKDCore
import QKDWire
import Testing

@Suite struct EnvelopeTests {
    @Test(arguments: MessageKind.allCases)
    func roundTripsEveryKind(kind: MessageKind) throws {
        var g = Xoshiro256(seed: UInt64(kind.rawValue))
        for size in [0, 1, 8, 1000, 70_000] {
            let payload = (0..<size).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            let envelope = Envelope(kind: kind, link: LinkIndex(UInt32(truncatingIfNeeded: g.next())),
                                    sequence: g.next(), payload: payload)
            let bytes = envelope.encoded()
            #expect(bytes.count == Envelope.headerSize + size)
            #expect(try Envelope.decode(bytes) == envelope)
        }
    }

    @Test func headerLayoutIsBigEndianAndFixed() {
        let bytes = Envelope(kind: .ping, link: LinkIndex(0x0102_0304), sequence: 0x0A0B_0C0D_0E0F_1011,
                             payload: [0xFF]).encoded()
        #expect(bytes == [0x51, 0x4B, 1, 2, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0, 0, 0, 1, 0xFF])
    }

    func code(_ bytes: [UInt8], maxPayload: Int = Envelope.defaultMaxPayload) -> WireError.Code? {
        do {
            _ = try Envelope.decode(bytes, maxPayload: maxPayload)
            return nil
        } catch {
            return error.code
        }
    }

    @Test func rejectsEachKindOfBadFrameWithItsReason() {
        let good = Envelope(kind: .heartbeat, link: LinkIndex(3), sequence: 9, payload: [1, 2, 3, 4]).encoded()
        #expect(code(Array(good.prefix(19))) == .truncated)
        #expect(code([]) == .truncated)
        var bad = good; bad[0] = 0x00
        #expect(code(bad) == .badMagic)
        bad = good; bad[2] = 2
        #expect(code(bad) == .unsupportedVersion)
        bad = good; bad[3] = 200
        #expect(code(bad) == .unknownKind)
        #expect(code(Array(good.dropLast())) == .lengthMismatch)
        #expect(code(good + [0]) == .lengthMismatch)
        bad = good; bad[16] = 0x7F
        #expect(code(bad) == .oversized)
        #expect(code(good, maxPayload: 3) == .oversized)
    }

    @Test func payloadDecodersRejectWrongLengths() throws {
        #expect(throws: WireError.self) { try Heartbeat.decode([1, 2, 3]) }
        #expect(throws: WireError.self) { try Heartbeat.decode([UInt8](repeating: 0, count: 9)) }
        #expect(throws: WireError.self) { try Probe.decode([]) }
        #expect(try Probe.decode(Probe(nonce: 77).encoded()) == Probe(nonce: 77))
        #expect(try Heartbeat.decode(Heartbeat(incarnation: 5).encoded()) == Heartbeat(incarnation: 5))
    }

    /// Fuzzes the decoder for a few seconds with random frames, truncations and bit flips of
    /// valid frames. It must never trap, and every frame it accepts must re-encode to the
    /// same bytes (so nothing ambiguous gets through).
    @Test func fuzzDecoderWithHostileBytes() {
        var g = Xoshiro256(seed: 0xF022)
        let clock = ContinuousClock()
        let start = clock.now
        var accepted = 0, rejected = 0, iterations = 0
        while clock.now - start < .seconds(3) {
            iterations += 1
            var bytes: [UInt8]
            switch g.nextBounded(4) {
            case 0:
                bytes = (0..<Int(g.nextBounded(64))).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            case 1:
                let kind = MessageKind.allCases[Int(g.nextBounded(UInt64(MessageKind.allCases.count)))]
                let payload = (0..<Int(g.nextBounded(40))).map { _ in UInt8(truncatingIfNeeded: g.next()) }
                bytes = Envelope(kind: kind, link: LinkIndex(UInt32(g.nextBounded(8))), sequence: g.next(), payload: payload).encoded()
                bytes = Array(bytes.prefix(Int(g.nextBounded(UInt64(bytes.count + 1)))))
            case 2:
                bytes = Envelope(kind: .ping, link: LinkIndex(1), sequence: g.next(), payload: [1, 2, 3, 4, 5, 6, 7, 8]).encoded()
                for _ in 0...Int(g.nextBounded(3)) {
                    let i = Int(g.nextBounded(UInt64(bytes.count)))
                    bytes[i] ^= UInt8(1) << UInt8(g.nextBounded(8))
                }
            default:
                // Valid magic and version, random rest: exercises the length checks.
                bytes = [0x51, 0x4B, 1] + (0..<Int(g.nextBounded(40))).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            }
            do {
                let envelope = try Envelope.decode(bytes, maxPayload: 1 << 16)
                accepted += 1
                #expect(envelope.encoded() == bytes)
            } catch {
                rejected += 1
            }
        }
        #expect(iterations > 10_000)
        #expect(accepted > 0 && rejected > 0)
    }
}

@Suite struct ControlCodecTests {
    @Test func requestsRoundTripAndGarbageIsRejected() throws {
        let request = ControlRequest(command: .ping, link: "A-B", count: 5)
        #expect(try ControlCodec.decode(ControlRequest.self, from: ControlCodec.encode(request)) == request)
        #expect(throws: WireError.self) { try ControlCodec.decode(ControlRequest.self, from: Array("{\"command\":\"rm -rf\"}".utf8)) }
        #expect(throws: WireError.self) { try ControlCodec.decode(ControlRequest.self, from: [0xFF, 0x00]) }
    }
}
