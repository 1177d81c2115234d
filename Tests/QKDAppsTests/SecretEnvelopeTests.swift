import Foundation
import QKDApps
import QKDClient
import Testing

/// The envelope alone, with keys made here: what it carries, what it refuses.
@Suite struct SecretEnvelopeTests {
    static func keys(_ n: Int, seed: UInt8) -> [(id: String, key: [UInt8])] {
        (0..<n).map { i in (UUID().uuidString, (0..<32).map { UInt8(truncatingIfNeeded: Int($0) &* 31 &+ i &* 7 &+ Int(seed)) }) }
    }

    static let photo: [UInt8] = Array((try? Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("docs/photos/jinan.png"))) ?? Data())

    static func sealed() throws -> (SecretEnvelope, pad: [(id: String, key: [UInt8])], mac: (id: String, key: [UInt8])) {
        let pad = keys(SecretEnvelope.padKeys(for: photo.count, keyBytes: 32), seed: 1), mac = keys(1, seed: 2)[0]
        let e = try SecretEnvelope.seal(photo, name: "jinan.png", master: "SAE-Jinan", slave: "SAE-Stellenbosch", pad: pad, mac: mac)
        return (e, pad, mac)
    }

    @Test func aSealedPhotoOpensBitExactWithTheSameKeysAndShowsNoKey() throws {
        #expect(Self.photo.count > 1000, "the shipped photo is missing")
        let (e, pad, mac) = try Self.sealed()
        #expect(e.padKeyIDs == pad.map(\.id) && e.macKeyID == mac.id && e.size == Self.photo.count)
        let cipher = Array(Data(base64Encoded: e.ciphertext)!)
        #expect(cipher != Self.photo)
        // The pad's bytes are XORed in order: the ciphertext is the photo XOR the pad.
        #expect(zip(cipher, pad.flatMap(\.key)).map { $0 ^ $1 } == Self.photo)
        #expect(try e.open(pad: pad.map(\.key), macKey: mac.key, slave: "SAE-Stellenbosch") == Self.photo)
        // The envelope's JSON names the keys and never holds one.
        let json = String(decoding: try JSONEncoder().encode(e), as: UTF8.self)
        for k in pad.prefix(8) + [mac] { #expect(!json.contains(Data(k.key).base64EncodedString().prefix(16))) }
        #expect(json.contains("pad_key_IDs") && json.contains("mac_key_ID") && json.contains("slave_SAE_ID"))
    }

    @Test func aChangedCiphertextHeaderOrKeyIsRefusedBeforeDecryption() throws {
        let (e, pad, mac) = try Self.sealed()
        func refused(_ f: SecretEnvelope, pad p: [[UInt8]]? = nil, mac m: [UInt8]? = nil, slave: String = "SAE-Stellenbosch") -> String? {
            do {
                _ = try f.open(pad: p ?? pad.map(\.key), macKey: m ?? mac.key, slave: slave)
                return nil
            } catch {
                return error.message
            }
        }
        var flipped = e
        var bytes = Array(Data(base64Encoded: e.ciphertext)!)
        bytes[bytes.count / 2] ^= 0x01
        flipped.ciphertext = Data(bytes).base64EncodedString()
        #expect(refused(flipped)?.contains("authentication failed") == true)
        var renamed = e
        renamed.name = "other.png"
        #expect(refused(renamed)?.contains("authentication failed") == true)
        var rekeyed = e
        rekeyed.padKeyIDs[0] = UUID().uuidString
        #expect(refused(rekeyed)?.contains("authentication failed") == true)
        var wrongMaster = e
        wrongMaster.master = "SAE-Eve"
        #expect(refused(wrongMaster)?.contains("authentication failed") == true)
        #expect(refused(e, mac: Self.keys(1, seed: 9)[0].key)?.contains("authentication failed") == true)
        #expect(refused(e, slave: "SAE-Eve")?.contains("addressed to 'SAE-Stellenbosch', not 'SAE-Eve'") == true)
        var escaping = e
        escaping.name = "../etc/passwd"
        #expect(refused(escaping)?.contains("not a plain name") == true)
        var short = e
        short.size += 1
        #expect(refused(short)?.contains("not \(e.size + 1) bytes") == true)
        var repeated = e
        repeated.macKeyID = e.padKeyIDs[0]
        #expect(refused(repeated)?.contains("repeat") == true)
    }

    @Test func sealingNeedsPadForEveryByteAndA256BitMACKey() throws {
        let pad = Self.keys(1, seed: 3), mac = Self.keys(1, seed: 4)[0]
        #expect(throws: SecretEnvelope.Refusal.self) {
            try SecretEnvelope.seal(Array(repeating: 7, count: 33), name: "a", master: "M", slave: "S", pad: pad, mac: mac)
        }
        #expect(throws: SecretEnvelope.Refusal.self) {
            try SecretEnvelope.seal([1, 2, 3], name: "a", master: "M", slave: "S", pad: pad, mac: (mac.id, Array(mac.key.prefix(16))))
        }
        #expect(SecretEnvelope.padKeys(for: 3727, keyBytes: 32) == 117)
        #expect(SecretEnvelope.padKeys(for: 64, keyBytes: 32) == 2)
    }

    @Test func theClientsBackoffDoublesUpToItsCeilingAndKeysHideTheirBits() {
        let policy = ETSI014Client.RetryPolicy(attempts: 6, initialDelay: .milliseconds(200), maximumDelay: .seconds(1))
        #expect((1...5).map { policy.delay(after: $0) } == [.milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(ETSI014Client.RetryPolicy(attempts: 0).attempts == 1)
        let key = ETSI014Key(keyID: "k1", key: [0xde, 0xad, 0xbe, 0xef])
        #expect(key.description == "key k1 (32 bits)")
    }
}
