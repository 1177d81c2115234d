import ArgumentParser
import CQKDSystem
import CZeroMQ
import Foundation
import QKDAttacks
import QKDCore
import QKDTopology
import QKDTransport
import QKDWire

/// An eavesdropper spliced into one link of a running network (`qkdctl eve add` starts it).
/// It binds its own endpoint; once both ends of the link send through it (`splice`), it carries
/// their frames between them, attacking the photons and reading (or altering) the public
/// channel. It answers `status` on its control endpoint with what it learned.
@main
struct QKDEveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qkd-eve",
        abstract: "Run an eavesdropper on one link of a running QKDNet network.",
        discussion: """
            Attacks: intercept-resend, pns (photon-number splitting with blocking), beam-splitting, \
            classical-tamper. Prints one line QKDNET EVE READY link=L pid=P when its endpoints are \
            bound; stops on SIGTERM. Exit codes: 0 stopped, 1 runtime failure, 2 bad configuration.
            """)

    @Option(name: .customLong("run-dir"), help: "The network's run directory.")
    var runDir: String

    @Option(help: "The link, by name (A-B).")
    var link: String

    @Option(help: "intercept-resend, pns, beam-splitting or classical-tamper.")
    var attack: String

    @Option(help: "Fraction of pulses (classical-tamper: of post-processing messages) attacked, 0...1.")
    var fraction: Double = 1

    @Option(name: .customLong("at-km"), help: "Eve's point, km from the link's a end (default: by attack).")
    var atKm: Double?

    @Option(help: "Seed of Eve's random choices (default: from the topology's seed and the link).")
    var seed: UInt64?

    func run() throws {
        let layout = RunLayout(root: URL(fileURLWithPath: runDir).standardizedFileURL.path)
        let topology: Topology
        do {
            topology = try TopologyParser.load(path: layout.topologyPath)
        } catch {
            fail(2, "\(error)")
        }
        guard let link = topology.link(named: self.link) else {
            fail(2, "--link: '\(self.link)' is not a link of \(layout.topologyPath) (links: \(topology.links.prefix(8).map(\.name).joined(separator: ", "))...)")
        }
        guard let kind = Eavesdropper.Attack(rawValue: attack) else {
            fail(2, "--attack: '\(attack)' is not one of \(Eavesdropper.Attack.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard fraction >= 0, fraction <= 1 else { fail(2, "--fraction: \(fraction) is outside 0...1") }
        guard let a = topology.node(link.a), let b = topology.node(link.b) else { fail(2, "link \(link.name): unknown end") }
        let (settings, point) = Eavesdropper.Settings.onLink(link, attack: kind, fraction: fraction, atKm: atKm)
        let eveSeed = seed ?? SeedTree(root: topology.seed).seed(for: "eve/\(link.name)")
        var interposer = Interposer(link: link.index, a: link.a, b: link.b,
                                    eve: Eavesdropper(settings: settings, link: link.name, seed: eveSeed))

        guard qkd_install_stop_handlers() == 0 else { fail(1, "cannot install signal handlers") }
        // Her own key pair (made by qkdctl eve add), the ends' public keys, the control key.
        let keys: CurveKeyPair, keyOfA: String, keyOfB: String, controlKey: String
        do {
            keys = try CurveKeyFile.readPair(public: layout.evePublicKeyPath(link.name), secret: layout.eveSecretKeyPath(link.name))
            keyOfA = try CurveKeyFile.read(layout.nodePublicKeyPath(link.a))
            keyOfB = try CurveKeyFile.read(layout.nodePublicKeyPath(link.b))
            controlKey = try CurveKeyFile.read(layout.controlPublicKeyPath)
        } catch {
            fail(2, "\(error)")
        }
        let context = ZMQContext()
        let zap: ZAPHandler, inbound: ZMQSocket, control: ZMQSocket, toA: ZMQSocket, toB: ZMQSocket
        do {
            // The ends connect to her as themselves; she connects to each end with her own key,
            // which the end admits once it is spliced (her handshake is held until then).
            zap = try ZAPHandler(context: context)
            zap.admit(keyOfA, as: link.a.rawValue, in: ZAPHandler.peerDomain)
            zap.admit(keyOfB, as: link.b.rawValue, in: ZAPHandler.peerDomain)
            zap.admit(controlKey, as: "control", in: ZAPHandler.controlDomain)
            inbound = try ZMQSocket(context: context, kind: .router)
            try inbound.setOption(ZMQ_MAXMSGSIZE, ZMQNodeTransport.maxMessageSize)
            try inbound.makeCurveServer(keys, domain: ZAPHandler.peerDomain)
            try inbound.bind(layout.evePeerEndpoint(link.name))
            control = try ZMQSocket(context: context, kind: .router)
            try control.setOption(ZMQ_MAXMSGSIZE, Int64(1 << 20))
            try control.makeCurveServer(keys, domain: ZAPHandler.controlDomain)
            try control.bind(layout.eveControlEndpoint(link.name))
            toA = try ZMQNodeTransport.dealer(context: context, keys: keys, serverKey: keyOfA, endpoint: layout.peerEndpoint(a), immediate: false)
            toB = try ZMQNodeTransport.dealer(context: context, keys: keys, serverKey: keyOfB, endpoint: layout.peerEndpoint(b), immediate: false)
        } catch {
            fail(1, "eve on \(link.name): cannot open sockets: \(error)")
        }
        let pid = getpid()
        writeLine("QKDNET EVE READY link=\(link.name) pid=\(pid) attack=\(kind.rawValue) fraction=\(fraction) at_km=\(point) seed=\(eveSeed)", to: 1)

        while qkd_stop_signal() == 0 {
            let ready = zmqPoll(sockets: [inbound, control, zap.pollSocket], fds: [qkd_stop_fd()], timeoutMs: 200)
            if ready.contains(3) { break }
            _ = zap.handle()
            for _ in 0..<256 {
                guard let (parts, truncated, sender) = inbound.receiveMessage(maxParts: 2) else { break }
                guard !truncated, parts.count == 2, let sender,
                      let (to, frame) = interposer.carry(parts[1], from: NodeID(sender)) else { continue }
                _ = (to == link.a ? toA : toB).send([frame])
            }
            for _ in 0..<16 {
                guard let (parts, truncated, user) = control.receiveMessage(maxParts: 2) else { break }
                guard !truncated, parts.count == 2, user == "control" else { continue }
                var report = interposer.report
                report.pid = pid
                report.atKm = kind == .classicalTamper ? nil : point
                let reply: ControlReply
                if let request = try? ControlCodec.decode(ControlRequest.self, from: parts[1]), request.command == .status {
                    reply = ControlReply(eve: report)
                } else {
                    reply = ControlReply(error: "an eavesdropper answers only status")
                }
                _ = control.send([parts[0], ControlCodec.encode(reply)])
            }
        }
        for socket in [inbound, control, toA, toB] { socket.close() }
        zap.close()
    }

    func fail(_ code: Int32, _ message: String) -> Never {
        writeLine("qkd-eve: error: \(message)", to: 2)
        Glibc.exit(code)
    }

    func writeLine(_ line: String, to fd: Int32) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}
