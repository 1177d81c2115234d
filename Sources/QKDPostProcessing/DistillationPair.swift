import QKDCore
import QKDKeyPool
import QKDWire

/// Both ends of one link's distillation in one process (simulation, tests, benchmarks): each
/// end's distiller and key pool, the pools starting from the link's bootstrap (derived from the
/// seed tree unless one is given), messages delivered directly through their wire encodings.
public struct DistillationPair: Sendable {
    public var alice: KeyDistiller
    public var bob: KeyDistiller
    public var alicePool: KeyPool
    public var bobPool: KeyPool

    public init(configuration: DistillerConfiguration, linkSeeds: SeedTree, session: UInt64, secrecy: Secrecy,
                bootstrap: LinkBootstrap? = nil, pool: KeyPool.Configuration = .init(maxKeyCount: 1 << 40)) {
        let bootstrap = bootstrap ?? .derived(linkSeeds: linkSeeds, keyBits: configuration.keyBits, count: configuration.preSharedKeys)
        alice = KeyDistiller(role: .alice, configuration: configuration, linkSeeds: linkSeeds, session: session,
                             authenticationKey: bootstrap.authenticationKey, secrecy: secrecy)
        bob = KeyDistiller(role: .bob, configuration: configuration, linkSeeds: linkSeeds, session: session,
                           authenticationKey: bootstrap.authenticationKey, secrecy: secrecy)
        let psk = bootstrap.keys
        var a = KeyPool(configuration: pool)
        try! a.deposit(psk, pending: false)  // fresh pool, distinct IDs: cannot fail
        a.synchronise(peerHolds: Set(psk.map(\.id)))
        alicePool = a
        bobPool = a
    }

    /// Keys committed (available) at each end, with their bits.
    public typealias Committed = (alice: [DistilledKey], bob: [DistilledKey])

    /// One sifted block at each end, distilled to the end; returns the keys each end committed
    /// meanwhile (a round's keys are committed one round later: two-phase).
    public mutating func distil(alice a: SiftedBlock, bob b: SiftedBlock,
                                tamper: ((MessageKind, inout [UInt8]) -> Void)? = nil) -> Committed {
        _ = alice.sifted(a)
        return exchange(bob.sifted(b), from: .bob, tamper: tamper)
    }

    /// Delivers distillation messages between the two ends until none is left.
    public mutating func exchange(_ initial: [KeyDistiller.Output], from start: KeyDistiller.Role,
                                  tamper: ((MessageKind, inout [UInt8]) -> Void)? = nil) -> Committed {
        var committed: Committed = ([], [])
        var queue: [(to: KeyDistiller.Role, kind: MessageKind, payload: [UInt8])] = []
        func absorb(_ outputs: [KeyDistiller.Output], from role: KeyDistiller.Role, pool: KeyPool) {
            for o in outputs {
                switch o {
                case .send(let kind, var payload):
                    tamper?(kind, &payload)
                    queue.append((role == .alice ? .bob : .alice, kind, payload))
                case .committed(_, let ids):
                    let keys = ids.compactMap { id in pool.bits(of: id).map { DistilledKey(id: id, bits: BitVectorBox($0)) } }
                    if role == .alice { committed.alice += keys } else { committed.bob += keys }
                case .log, .estimated: break
                }
            }
        }
        absorb(initial, from: start, pool: start == .alice ? alicePool : bobPool)
        while !queue.isEmpty {
            let (to, kind, payload) = queue.removeFirst()
            if to == .alice {
                let out = alice.received(kind, payload, pool: &alicePool)
                absorb(out, from: .alice, pool: alicePool)
            } else {
                let out = bob.received(kind, payload, pool: &bobPool)
                absorb(out, from: .bob, pool: bobPool)
            }
        }
        return committed
    }
}
