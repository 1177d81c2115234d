import QKDAttacks
import QKDCore
import QKDLink
import QKDNodeCore
import QKDTopology
import QKDWire
import Synchronization

extension DeterministicNetwork {
    /// An eavesdropper in the test process: the same `Interposer` (and `Eavesdropper`) that
    /// `qkd-eve` runs, carrying the link's frames inside the in-memory network.
    public final class Eve: Sendable {
        let interposer: Mutex<Interposer>

        init(_ interposer: Interposer) { self.interposer = Mutex(interposer) }

        /// What she learned so far.
        public var report: EavesdropperReport { interposer.withLock { $0.report } }
    }

    /// Splices an eavesdropper into `link`, as `qkdctl eve add` does: the `b` end first, then
    /// the `a` end with the transmittance to her point. Nil if an end refused (the reason is in
    /// its log).
    public func addEve(link name: String, attack: Eavesdropper.Attack, fraction: Double = 1, atKm: Double? = nil) -> Eve? {
        guard let link = topology.link(named: name) else { return nil }
        let (settings, _) = Eavesdropper.Settings.onLink(link, attack: attack, fraction: fraction, atKm: atKm)
        let seed = SeedTree(root: topology.seed).seed(for: "eve/\(link.name)")
        let eve = Eve(Interposer(link: link.index, a: link.a, b: link.b, eve: Eavesdropper(settings: settings, link: link.name, seed: seed)))
        let seenAs = LinkChannel.interposerID(link)
        network.setInterposer(link.a, link.b) { frame, from in
            eve.interposer.withLock { $0.carry(frame, from: from) }.map { (to: $0.to, as: seenAs, frame: $0.frame) }
        }
        for (end, transmittance) in [(link.b, nil), (link.a, settings.fromAlice)] as [(NodeID, Double?)] {
            let request = ControlRequest.splice(link: link.name, via: .init(endpoint: "in-memory", key: "in-memory", transmittance: transmittance))
            guard control(request, to: end.rawValue)?.ok == true else {
                removeEve(link: name)
                return nil
            }
        }
        return eve
    }

    /// Takes the eavesdropper out of `link`: both ends send directly again.
    public func removeEve(link name: String) {
        guard let link = topology.link(named: name) else { return }
        for end in [link.a, link.b] { _ = control(ControlRequest.splice(link: link.name, via: nil), to: end.rawValue) }
        network.setInterposer(link.a, link.b, nil)
    }
}
