import ArgumentParser
import Foundation
import QKDApps
import QKDClient
import QKDLaunch
import QKDTopology

struct SecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret",
        abstract: "Send files between SAEs sealed with QKD keys (one-time pad, one-time HMAC key) through a mailbox directory.",
        subcommands: [SecretSend.self, SecretReceive.self])
}

/// An ETSI 014 client for `sae` of a running network: its KME's URL from the network's status,
/// the certificates from the run's PKI.
func kmeClient(_ network: Network, sae: String) throws -> ETSI014Client {
    guard let entity = network.topology.saes.first(where: { $0.id == sae }) else {
        throw CLIError("unknown SAE '\(sae)' in topology '\(network.topology.name)'")
    }
    guard let url = network.status().nodes.first(where: { $0.id == entity.node.rawValue })?.kmeURL else {
        throw CLIError("the KME of \(entity.node) (SAE \(sae)) does not answer: is the network up?")
    }
    let pki = PKI(runDirectory: network.layout.root)
    do {
        return try ETSI014Client(kmeURL: url, caPath: pki.caPath, certificatePath: pki.saeCertificatePath(sae), keyPath: pki.saeKeyPath(sae))
    } catch {
        throw CLIError(error.description)
    }
}

/// Runs `body` with `client`, then closes the client's connections, whatever happened.
func using<T: Sendable>(_ client: ETSI014Client, _ body: @escaping @Sendable (ETSI014Client) async throws -> T) throws -> T {
    try blocking {
        do {
            let value = try await body(client)
            await client.shutdown()
            return value
        } catch {
            await client.shutdown()
            throw error
        }
    }
}

/// Runs an async body from a synchronous command (qkdctl's commands are synchronous).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?  // written once, before the semaphore is signalled
}

struct SecretSend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Seal FILEs for --to with keys --from's KME gives, into --mailbox (one envelope per file).")

    @OptionGroup var options: NetworkOptions

    @Option(help: "The sending (master) SAE.")
    var from: String

    @Option(help: "The receiving (slave) SAE.")
    var to: String

    @Option(help: "The mailbox directory (the untrusted transport).")
    var mailbox: String

    @Option(help: "Wall seconds to keep asking while the KME has too few keys (503), e.g. until a satellite's pass.")
    var wait: Double = 60

    @Argument(help: "Files to send (each at most 1 MiB).")
    var files: [String]

    func run() throws {
        let network = try options.network()
        let client = try kmeClient(network, sae: from)
        try FileManager.default.createDirectory(atPath: mailbox, withIntermediateDirectories: true)
        let (files, mailbox, from, to) = (files, mailbox, from, to)
        let deadline = ContinuousClock.now + .milliseconds(Int64(wait * 1000))
        let sent = try using(client) { client in
            try await SecretMailbox.send(files: files, mailbox: mailbox, client: client, master: from, slave: to, deadline: deadline)
        }
        for s in sent {
            print("sent \(s.name): \(s.bytes) bytes, \(s.keys) keys (\(s.keyBits) bits), waited \(String(format: "%.1f", s.waitedSeconds)) s for keys")
        }
    }
}

struct SecretReceive: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive", abstract: "Open every envelope in --mailbox addressed to --as, with keys from its KME, into --out.")

    @OptionGroup var options: NetworkOptions

    @Option(name: .customLong("as"), help: "The receiving (slave) SAE.")
    var sae: String

    @Option(help: "The mailbox directory.")
    var mailbox: String

    @Option(help: "Where the opened files go.")
    var out: String

    func run() throws {
        let network = try options.network()
        let client = try kmeClient(network, sae: sae)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let (mailbox, out, sae) = (mailbox, out, sae)
        let received = try using(client) { client in
            try await SecretMailbox.receive(mailbox: mailbox, output: out, client: client, slave: sae)
        }
        for r in received { print("received \(r.name): \(r.bytes) bytes, \(r.keys) keys, written to \(r.path)") }
    }
}
