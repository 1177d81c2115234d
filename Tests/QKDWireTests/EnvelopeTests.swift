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

    @Test func relayForwardCarriesItsApplicationAndRefusesInconsistentOnes() throws {
        let ids = [KeyID(high: 1, low: 2), KeyID(high: 3, low: 4)]
        let app = RelayApplication(master: "SAE-Alice", slave: "SAE-Bob", keySize: 512, keyIDs: ids)
        let forward = RelayForward(relay: KeyID(high: 9, low: 9), path: ["Alice", "Relay", "Bob"], hop: 2, bits: 1024,
                                   keys: [KeyID(high: 5, low: 6), KeyID(high: 7, low: 8), KeyID(high: 10, low: 11), KeyID(high: 12, low: 13)],
                                   padded: Array(repeating: 0xA5, count: 16), application: app, macKey: KeyID(high: 14, low: 15),
                                   tag: UInt128(0xDEAD) << 100 | 0xBEEF)
        #expect(try RelayForward.decode(forward.encoded()) == forward)
        // The tag is last and covers everything before it.
        #expect(forward.encoded() == forward.authenticatedBytes + forward.encoded().suffix(16))
        var plain = forward
        plain.application = nil
        #expect(try RelayForward.decode(plain.encoded()) == plain)
        // Application keys that do not add up to the relayed bits, or an unknown flag: refused.
        var odd = forward
        odd.application?.keySize = 256
        #expect(throws: WireError.self) { try RelayForward.decode(odd.encoded()) }
        var bytes = forward.encoded()
        let flagAt = 16 + 4 + (1 + 5) + (1 + 5) + (1 + 3) + 4 + 4 + 4 + 4 * 16 + 16
        #expect(bytes[flagAt] == 1)
        bytes[flagAt] = 3
        #expect { try RelayForward.decode(bytes) } throws: { ($0 as? WireError)?.message.contains("application flag 3") == true }
        // A hybrid key's capsule travels after the key IDs (flag 2), inside what the tag covers.
        var hybrid = forward
        hybrid.application?.capsule = (0..<1120).map { UInt8(truncatingIfNeeded: $0) }
        #expect(try RelayForward.decode(hybrid.encoded()) == hybrid)
        #expect(hybrid.encoded()[flagAt] == 2 && hybrid.application?.kind == "hybrid" && forward.application?.kind == "qkd")
        #expect(hybrid.authenticatedBytes.count == forward.authenticatedBytes.count + 4 + 1120)
        var oversized = hybrid
        oversized.application?.capsule = [UInt8](repeating: 1, count: RelayApplication.maxCapsuleBytes + 1)
        #expect { try RelayForward.decode(oversized.encoded()) } throws: { ($0 as? WireError)?.message.contains("capsule") == true }
        // A flag 2 without its capsule (the old encoding with the flag changed): refused.
        bytes = forward.encoded()
        bytes[flagAt] = 2
        #expect(throws: WireError.self) { try RelayForward.decode(bytes) }
        // Every truncation is refused, never trapped on.
        let whole = forward.encoded()
        for n in 0..<whole.count { #expect(throws: WireError.self) { try RelayForward.decode(Array(whole.prefix(n))) } }
    }

    @Test func relaySignalsCarryATypedCauseAndRefuseAnUnknownOne() throws {
        let abort = RelaySignal(relay: KeyID(high: 1, low: 2), cause: .refusedByDestination, reason: "refused by the destination: full")
        #expect(try RelaySignal.decode(abort.encoded()) == abort)
        for cause in RelayFailureCause.allCases {
            #expect(try RelaySignal.decode(RelaySignal(relay: KeyID(high: 3, low: 4), cause: cause).encoded()).cause == cause)
        }
        let ack = RelaySignal(relay: KeyID(high: 5, low: 6))
        #expect(try RelaySignal.decode(ack.encoded()) == ack)
        var bytes = abort.encoded()
        bytes[16] = 200
        #expect { try RelaySignal.decode(bytes) } throws: { ($0 as? WireError)?.message.contains("unknown failure cause 200") == true }
        let whole = abort.encoded()
        for n in 0..<whole.count { #expect(throws: WireError.self) { try RelaySignal.decode(Array(whole.prefix(n))) } }
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
        let request = ControlRequest.ping(link: "A-B", count: 5)
        #expect(try ControlCodec.decode(ControlRequest.self, from: ControlCodec.encode(request)) == request)
        #expect(throws: WireError.self) { try ControlCodec.decode(ControlRequest.self, from: Array("{\"command\":\"rm -rf\"}".utf8)) }
        #expect(throws: WireError.self) { try ControlCodec.decode(ControlRequest.self, from: [0xFF, 0x00]) }
    }

    /// Every request keeps the JSON qkdctl and other tools send (the wire format of the bag of
    /// optionals it replaced), and reads back as the same case.
    @Test func everyRequestHasItsWireForm() throws {
        let forms: [(ControlRequest, String)] = [
            (.status, #"{"command":"status"}"#),
            (.shutdown, #"{"command":"shutdown"}"#),
            (.pools, #"{"command":"pools"}"#),
            (.ping(link: "A-B", count: 3), #"{"command":"ping","count":3,"link":"A-B"}"#),
            (.keyDigests(link: "A-B", salt: 9), #"{"command":"keyDigests","link":"A-B","salt":9}"#),
            (.relay(to: "C", bits: 512), #"{"bits":512,"command":"relay","to":"C"}"#),
            (.routes(to: "C", bits: 256), #"{"bits":256,"command":"routes","to":"C"}"#),
            (.relayShow(keyID: "k", salt: 5), #"{"command":"relayShow","key_ID":"k","salt":5}"#),
            (.relayShow(keyID: "k", salt: nil), #"{"command":"relayShow","key_ID":"k"}"#),
            (.fault(.cut(link: "A-B")), #"{"command":"fault","fault":"cut","link":"A-B"}"#),
            (.fault(.partition(link: "A-B")), #"{"command":"fault","fault":"partition","link":"A-B"}"#),
            (.fault(.delay(link: "A-B", milliseconds: 25)), #"{"command":"fault","fault":"delay","link":"A-B","value":25}"#),
            (.fault(.loss(link: "A-B", decibels: 3.5)), #"{"command":"fault","fault":"loss","link":"A-B","value":3.5}"#),
            (.fault(.heal(link: nil)), #"{"command":"fault","fault":"heal"}"#),
            (.fault(.heal(link: "A-B")), #"{"command":"fault","fault":"heal","link":"A-B"}"#),
            (.splice(link: "A-B", via: .init(endpoint: "ipc:///e", key: "K", transmittance: 0.5)),
             #"{"command":"splice","endpoint":"ipc:\/\/\/e","key":"K","link":"A-B","value":0.5}"#),
            (.splice(link: "A-B", via: .init(endpoint: "ipc:///e", key: "K", transmittance: nil)),
             #"{"command":"splice","endpoint":"ipc:\/\/\/e","key":"K","link":"A-B"}"#),
            (.splice(link: "A-B", via: nil), #"{"command":"splice","link":"A-B"}"#),
            (.rebootstrap(link: "A-B"), #"{"command":"rebootstrap","link":"A-B"}"#),
        ]
        for (request, json) in forms {
            #expect(String(decoding: ControlCodec.encode(request), as: UTF8.self) == json)
            #expect(try ControlCodec.decode(ControlRequest.self, from: Array(json.utf8)) == request, "\(json)")
        }
        // Fields a command can do without take their defaults.
        #expect(try ControlCodec.decode(ControlRequest.self, from: Array(#"{"command":"ping","link":"A-B"}"#.utf8)) == .ping(link: "A-B", count: 10))
        #expect(try ControlCodec.decode(ControlRequest.self, from: Array(#"{"command":"relay","to":"C"}"#.utf8)) == .relay(to: "C", bits: 256))
    }

    /// A command without a field it needs, or with a field of the wrong type, is refused with a
    /// message naming the field.
    @Test func aMissingOrMistypedFieldIsNamed() {
        let refused: [(String, String)] = [
            (#"{"command":"ping"}"#, "ping needs 'link'"),
            (#"{"command":"keyDigests","link":"A-B"}"#, "keyDigests needs 'salt'"),
            (#"{"command":"relay"}"#, "relay needs 'to'"),
            (#"{"command":"relayShow","salt":1}"#, "relayShow needs 'key_ID'"),
            (#"{"command":"fault","link":"A-B"}"#, "fault needs 'fault'"),
            (#"{"command":"fault","fault":"cut"}"#, "fault needs 'link'"),
            (#"{"command":"fault","fault":"delay","link":"A-B"}"#, "fault needs 'value'"),
            (#"{"command":"splice"}"#, "splice needs 'link'"),
            (#"{"command":"rebootstrap"}"#, "rebootstrap needs 'link'"),
            (#"{"link":"A-B"}"#, "missing field 'command'"),
            (#"{"command":"ping","link":"A-B","count":"many"}"#, "field 'count' is not a Int"),
            (#"{"command":"fault","fault":"melt","link":"A-B"}"#, "field 'fault'"),
            ("[1]", "ControlRequest"),
        ]
        for (json, message) in refused {
            do {
                let request = try ControlCodec.decode(ControlRequest.self, from: Array(json.utf8))
                Issue.record("\(json) decoded as \(request)")
            } catch {
                #expect(error.message.contains(message), "\(json): \(error.message)")
            }
        }
    }
}

@Suite struct PayloadCodingTests {
    /// u32 arrays are a big-endian count then big-endian values, and read back exactly; a
    /// count the bytes cannot hold is refused.
    @Test func u32ArraysAreBigEndianAndTruncationIsRefused() throws {
        var w = PayloadWriter()
        w.u32Array([0x0102_0304, 0xA0B0_C0D0])
        #expect(w.bytes == [0, 0, 0, 2, 1, 2, 3, 4, 0xA0, 0xB0, 0xC0, 0xD0])
        var g = Xoshiro256(seed: 11)
        let values = (0..<1000).map { _ in UInt32(truncatingIfNeeded: g.next()) }
        var long = PayloadWriter()
        long.u64(0x1122_3344_5566_7788)
        long.u32Array(values)
        #expect(Array(long.bytes.prefix(8)) == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        var r = ByteReader(long.bytes)
        #expect(try r.u64() == 0x1122_3344_5566_7788)
        #expect(try r.u32Array("values") == values)
        try r.expectEnd("values")
        var short = ByteReader(Array(w.bytes.dropLast()))
        #expect(throws: WireError.self) { try short.u32Array("values") }
    }
}
