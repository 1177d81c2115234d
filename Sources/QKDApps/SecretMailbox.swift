import Foundation
import QKDClient

/// Files from one SAE to another through a mailbox directory, the untrusted transport: the
/// sender takes keys with `enc_keys` at its KME and writes one `SecretEnvelope` per file
/// (`NAME.envelope.json`, written whole or not at all); the receiver reads each envelope,
/// takes the same keys with `dec_keys` at its KME, checks the tag and writes the file. Anyone
/// may read or change the directory: what they learn is the envelope's header, and a change is
/// refused at the receiver.
public enum SecretMailbox {
    public static let suffix = ".envelope.json"

    /// What sending one file took.
    public struct Sent: Sendable, Equatable {
        public var name: String
        public var bytes: Int
        /// Keys taken (pad and MAC) and their bits.
        public var keys: Int
        public var keyBits: Int
        /// Wall seconds spent waiting for keys (503 answers: the KME held too few).
        public var waitedSeconds: Double
    }

    /// Sends `file` from `master` to `slave` through `mailbox`: keys of the KME's key size in
    /// requests of at most its `max_key_per_request` (and of the stock, for a stocked pair),
    /// each retried on 503 until `deadline`.
    public static func send(file: String, mailbox: String, client: ETSI014Client, master: String, slave: String,
                            deadline: ContinuousClock.Instant) async throws -> Sent {
        let name = URL(fileURLWithPath: file).lastPathComponent
        guard let data = FileManager.default.contents(atPath: file) else { throw SecretEnvelope.Refusal("cannot read '\(file)'") }
        guard data.count <= SecretEnvelope.maximumBytes else {
            throw SecretEnvelope.Refusal("'\(file)': \(data.count) bytes exceed the one-time pad's \(SecretEnvelope.maximumBytes)")
        }
        let status = try await client.status(slave: slave)
        guard status.keySize >= 256, status.keySize % 8 == 0 else {
            throw SecretEnvelope.Refusal("the KME's keys are \(status.keySize) bits: the MAC needs 256")
        }
        let keyBytes = status.keySize / 8
        let batch = max(1, min(status.maxKeyPerRequest, status.maxKeyCount))
        let needed = SecretEnvelope.padKeys(for: data.count, keyBytes: keyBytes) + 1
        var waited: Duration = .zero
        var keys: [ETSI014Key] = []
        while keys.count < needed {
            let number = min(batch, needed - keys.count)
            let answer: Result<[ETSI014Key], ETSI014Error>
            do throws(ETSI014Error) {
                answer = .success(try await client.encKeys(slave: slave, number: number, size: status.keySize))
            } catch {
                answer = .failure(error)
            }
            switch answer {
            case .success(let taken):
                keys += taken
            case .failure(let error):
                guard error.kind == .serviceUnavailable, ContinuousClock.now < deadline else { throw error }
                // Too few keys now (a satellite's next pass may bring them): wait and ask again.
                let pause = Duration.seconds(1)
                try await Task.sleep(for: pause)
                waited += pause
            }
        }
        let mac = keys.removeLast()
        let envelope = try SecretEnvelope.seal(Array(data), name: name, master: master, slave: slave,
                                               pad: keys.map { ($0.keyID, $0.key) }, mac: (mac.keyID, Array(mac.key.prefix(32))))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let target = URL(fileURLWithPath: mailbox).appendingPathComponent(name + suffix)
        try encoder.encode(envelope).write(to: target, options: .atomic)
        return Sent(name: name, bytes: data.count, keys: needed, keyBits: needed * status.keySize,
                    waitedSeconds: Double(waited.components.seconds) + Double(waited.components.attoseconds) / 1e18)
    }

    /// Sends each of `files` in turn, all against one deadline.
    public static func send(files: [String], mailbox: String, client: ETSI014Client, master: String, slave: String,
                            deadline: ContinuousClock.Instant) async throws -> [Sent] {
        var out: [Sent] = []
        for f in files { out.append(try await send(file: f, mailbox: mailbox, client: client, master: master, slave: slave, deadline: deadline)) }
        return out
    }

    /// What receiving one envelope gave.
    public struct Received: Sendable, Equatable {
        public var name: String
        public var bytes: Int
        public var keys: Int
        public var path: String
    }

    /// Opens every envelope in `mailbox` addressed to `slave`, in name order, and writes each
    /// file into `output`. An envelope that fails (malformed, for another SAE, keys refused,
    /// tag wrong) throws naming it; no file is written for it.
    public static func receive(mailbox: String, output: String, client: ETSI014Client, slave: String) async throws -> [Received] {
        let names = try FileManager.default.contentsOfDirectory(atPath: mailbox).filter { $0.hasSuffix(suffix) }.sorted()
        var out: [Received] = []
        for file in names {
            let path = mailbox + "/" + file
            let envelope: SecretEnvelope
            do {
                envelope = try JSONDecoder().decode(SecretEnvelope.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            } catch {
                throw SecretEnvelope.Refusal("\(path): not an envelope (\(error))")
            }
            _ = try envelope.check(slave: slave)
            let ids = envelope.padKeyIDs + [envelope.macKeyID]
            var keys: [ETSI014Key] = []
            let status = try await client.status(slave: envelope.master)
            let batch = max(1, status.maxKeyPerRequest)
            var i = 0
            while i < ids.count {
                let chunk = Array(ids[i..<min(ids.count, i + batch)])
                keys += try await client.decKeys(master: envelope.master, keyIDs: chunk)
                i += chunk.count
            }
            let byID = Dictionary(keys.map { ($0.keyID.lowercased(), $0.key) }, uniquingKeysWith: { a, _ in a })
            let pad = envelope.padKeyIDs.compactMap { byID[$0.lowercased()] }
            guard pad.count == envelope.padKeyIDs.count, let macKey = byID[envelope.macKeyID.lowercased()], macKey.count >= 32 else {
                throw SecretEnvelope.Refusal("\(path): the KME did not return every key the envelope names")
            }
            let plain: [UInt8]
            do {
                plain = try envelope.open(pad: pad, macKey: Array(macKey.prefix(32)), slave: slave)
            } catch {
                throw SecretEnvelope.Refusal("\(path): \(error)")
            }
            let target = output + "/" + envelope.name
            try Data(plain).write(to: URL(fileURLWithPath: target), options: .atomic)
            out.append(Received(name: envelope.name, bytes: plain.count, keys: ids.count, path: target))
        }
        return out
    }
}
