import CQKDSystem
import Foundation
import QKDCore
import QKDTopology
import QKDTransport
import QKDWire
import Synchronization

/// The thread that runs a node's quantum layer: every `QuantumLinkEngine` of the node lives
/// here, so the event loop (pinned, latency-sensitive) never computes a frame. Inputs arrive
/// through `submit`; outputs are queued for the event loop, which `waker` interrupts; a report
/// snapshot is kept for control queries.
///
/// `@unchecked Sendable`: `condition` guards `inbox`; `outbox` and `reports` are `Mutex`es;
/// the engines are confined to the worker thread.
public final class QuantumWorker: @unchecked Sendable {
    public enum Input: Sendable, Equatable {
        case message(LinkIndex, MessageKind, [UInt8])
        case linkUp(LinkIndex)
        case linkDown(LinkIndex)
        /// The `a` end emits into this transmittance (an interposer's point) or, with nil, the
        /// whole channel again.
        case channel(LinkIndex, transmittance: Double?)
        case stop
    }

    public enum Output: Sendable {
        case send(LinkIndex, MessageKind, [UInt8])
        case log(NodeCore.LogLevel, String, [String: String])
        /// A link became compromised (parameter estimation failed) or clean again.
        case verdict(LinkIndex, compromised: Bool, reason: String?)
    }

    private let condition = NSCondition()
    private var inbox: [Input] = []
    private let outbox = Mutex<[Output]>([])
    private let reports = Mutex<[QuantumLinkReport]>([])
    private let finished = Mutex<Bool>(false)
    private let waker: any Waker
    private let clock: any QKDClock
    private let pools: NodePools
    private var thread: Thread?
    /// How much lower than the event loop the worker thread runs (nice increment).
    static let niceIncrement: Int32 = 10

    /// One link's pool agreement (`PoolSync`): Alice offers, Bob answers.
    struct Handshake {
        var up = false
        var nonces: UInt64 = 0
        /// Alice: the nonce of her current offer, when she sent it, and whether it was answered.
        var offered: UInt64?
        var offeredAt: Instant?
        var started = false
        /// Bob: the latest offer not answered yet, the highest offer nonce he ever answered
        /// (older offers are stale: their key lists no longer hold), and the answer of this
        /// link-up's session.
        var offer: PoolSync?
        var highestAnswered: UInt64 = 0
        var answered: (offer: UInt64, answer: PoolSync)?
    }

    /// Alice repeats an unanswered offer after this long.
    let offerRetryNs: UInt64 = 2_000_000_000

    public init(node: NodeID, topology: Topology, clock: any QKDClock, waker: any Waker, pools: NodePools) {
        self.waker = waker
        self.clock = clock
        self.pools = pools
        let now = clock.now()
        let engines = topology.links(of: node).map {
            QuantumLinkEngine(link: $0, node: node, topologySeed: topology.seed, timeScale: topology.timeScale, now: now)
        }
        reports.withLock { $0 = engines.map(\.currentReport) }
        let thread = Thread { [self] in
            _ = qkd_unpin_thread()
            // Below the event loop: when the CPU is short (a large network on few cores), the
            // classical control plane (heartbeats, routing, relays, the KME) keeps its pace and
            // the quantum layer falls behind instead (its lag is reported).
            _ = qkd_lower_thread_priority(QuantumWorker.niceIncrement)
            run(engines)
        }
        thread.name = "quantum-worker"
        self.thread = thread
    }

    public func start() { thread?.start() }

    public func submit(_ input: Input) {
        condition.lock()
        inbox.append(input)
        condition.signal()
        condition.unlock()
    }

    /// Takes every output queued since the last call.
    public func takeOutputs() -> [Output] {
        outbox.withLock { out in
            let taken = out
            out.removeAll(keepingCapacity: true)
            return taken
        }
    }

    public func snapshot() -> [QuantumLinkReport] { reports.withLock { $0 } }

    public var isFinished: Bool { finished.withLock { $0 } }

    /// Stops the thread and waits for it (at most `seconds`).
    public func stop(seconds: Double = 1) {
        submit(.stop)
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !isFinished && Date() < deadline { usleep(1000) }
    }

    private func run(_ initial: [QuantumLinkEngine]) {
        var engines = initial
        var position: [LinkIndex: Int] = [:]
        for (i, e) in engines.enumerated() { position[e.link.index] = i }
        var handshakes: [LinkIndex: Handshake] = [:]
        var running = true
        while running {
            let now = clock.now()
            var effects: [(LinkIndex, QuantumLinkEngine.Effect)] = []
            for i in engines.indices {
                effects += engines[i].tick(at: now).map { (engines[i].link.index, $0) }
            }
            for i in engines.indices {
                let link = engines[i].link.index
                if var h = handshakes[link], h.offered != nil, !h.started, let t = h.offeredAt, now.nanoseconds(since: t) >= offerRetryNs {
                    effects += offer(&engines[i], handshake: &h, at: now, repeated: true)
                    handshakes[link] = h
                }
            }
            publish(effects, engines: engines)
            let deadline = engines.compactMap { $0.nextDeadline(after: now) }.min()
            let waitNs = deadline.map { $0.nanoseconds(since: now) } ?? 100_000_000
            condition.lock()
            if inbox.isEmpty {
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(min(waitNs, 100_000_000)) / 1e9))
            }
            let inputs = inbox
            inbox.removeAll()
            condition.unlock()
            effects.removeAll()
            for input in inputs {
                let at = clock.now()
                switch input {
                case .message(let link, .poolSync, let payload):
                    guard let i = position[link] else { continue }
                    do {
                        effects += received(try PoolSync.decode(payload), engine: &engines[i], handshake: &handshakes[link, default: Handshake()], at: at)
                    } catch {
                        effects.append((link, .log(.warning, "pool sync rejected", ["link.id": engines[i].link.name, "reason": "\(error)"])))
                    }
                case .message(let link, let kind, let payload):
                    guard let i = position[link] else { continue }
                    let name = engines[i].link.name
                    let out = QuantumLinkEngine.touchesPool(kind)
                        ? pools.modify(name) { pool in engines[i].received(kind, payload, at: at, pool: &pool) } ?? []
                        : engines[i].received(kind, payload, at: at)
                    effects += out.map { (link, $0) }
                case .linkUp(let link):
                    guard let i = position[link] else { continue }
                    var h = handshakes[link, default: Handshake()]
                    h.up = true
                    effects += restart(&engines[i], handshake: &h, at: at)
                    handshakes[link] = h
                case .linkDown(let link):
                    guard let i = position[link] else { continue }
                    engines[i].stop(at: at)
                    handshakes[link]?.up = false
                    handshakes[link]?.offered = nil
                    handshakes[link]?.answered = nil
                    pools.modify(engines[i].link.name) { $0.desynchronise() }
                case .channel(let link, let transmittance):
                    guard let i = position[link] else { continue }
                    engines[i].emissionTransmittance = transmittance
                case .stop:
                    running = false
                }
            }
            publish(effects, engines: engines)
        }
        finished.withLock { $0 = true }
    }

    /// The link came up: stop any session; Alice offers her pool, Bob answers the offer he
    /// holds, if any (otherwise he answers when it comes).
    private func restart(_ engine: inout QuantumLinkEngine, handshake h: inout Handshake, at now: Instant) -> [(LinkIndex, QuantumLinkEngine.Effect)] {
        engine.stop(at: now)
        pools.modify(engine.link.name) { $0.desynchronise() }
        h.answered = nil
        if engine.role == .alice { return offer(&engine, handshake: &h, at: now, repeated: false) }
        if let offer = h.offer, offer.nonce > h.highestAnswered { return answer(offer, engine: &engine, handshake: &h, at: now) }
        // No fresh offer: ask Alice for one (she may still be running the old session).
        return [(engine.link.index, .send(.poolSync, PoolSync(nonce: 0, echo: 0, held: []).encoded()))]
    }

    private func nextNonce(_ h: inout Handshake) -> UInt64 {
        h.nonces += 1
        return pools.starts << 24 | (h.nonces & 0xFF_FFFF)
    }

    private func offer(_ engine: inout QuantumLinkEngine, handshake h: inout Handshake, at now: Instant, repeated: Bool) -> [(LinkIndex, QuantumLinkEngine.Effect)] {
        let nonce = repeated ? h.offered! : nextNonce(&h)
        h.offered = nonce
        h.offeredAt = now
        h.started = false
        let held = pools.read(engine.link.name) { $0.heldIDs } ?? []
        return [(engine.link.index, .send(.poolSync, PoolSync(nonce: nonce, echo: 0, held: held).encoded()))]
    }

    /// Bob keeps the keys both hold, answers with what he kept, and starts the session.
    private func answer(_ offer: PoolSync, engine: inout QuantumLinkEngine, handshake h: inout Handshake, at now: Instant) -> [(LinkIndex, QuantumLinkEngine.Effect)] {
        let link = engine.link
        engine.stop(at: now)
        let peerHeld = Set(offer.held)
        let (removed, kept) = pools.modify(link.name) { pool -> (Int, [KeyID]) in
            let (removed, _) = pool.synchronise(peerHolds: peerHeld)
            return (removed, pool.heldIDs)
        } ?? (0, [])
        let reply = PoolSync(nonce: nextNonce(&h), echo: offer.nonce, held: kept)
        h.answered = (offer.nonce, reply)
        h.highestAnswered = offer.nonce
        h.offer = nil
        return [(link.index, .send(.poolSync, reply.encoded()))] + started(&engine, alice: offer.nonce, bob: reply.nonce, removed: removed, at: now)
    }

    private func received(_ sync: PoolSync, engine: inout QuantumLinkEngine, handshake h: inout Handshake, at now: Instant) -> [(LinkIndex, QuantumLinkEngine.Effect)] {
        let link = engine.link
        switch engine.role {
        case .bob:
            guard sync.echo == 0, sync.nonce != 0 else {
                return [(link.index, .log(.warning, "pool sync answer or request sent to the link's b end", ["link.id": link.name]))]
            }
            if sync.nonce < h.highestAnswered { return [] }  // stale: its key list no longer holds
            if sync.nonce == h.highestAnswered {
                // A repeated offer: the same answer if its session is still the current one.
                if let done = h.answered, done.offer == sync.nonce, h.up { return [(link.index, .send(.poolSync, done.answer.encoded()))] }
                return []
            }
            h.offer = sync
            return h.up ? answer(sync, engine: &engine, handshake: &h, at: now) : []
        case .alice:
            if sync.nonce == 0 && sync.echo == 0 {
                // Bob asks for a fresh offer (his side restarted the link).
                return h.up ? restart(&engine, handshake: &h, at: now) : []
            }
            guard let offered = h.offered, sync.echo == offered, !h.started else { return [] }  // stale or repeated answer
            let peerHeld = Set(sync.held)
            let removed = pools.modify(link.name) { $0.synchronise(peerHolds: peerHeld).removed } ?? 0
            h.started = true
            return started(&engine, alice: offered, bob: sync.nonce, removed: removed, at: now)
        }
    }

    private func started(_ engine: inout QuantumLinkEngine, alice: UInt64, bob: UInt64, removed: Int, at now: Instant) -> [(LinkIndex, QuantumLinkEngine.Effect)] {
        let session = QuantumLinkEngine.session(aliceNonce: alice, bobNonce: bob)
        engine.start(session: session, at: now)
        let link = engine.link
        return [(link.index, .log(removed > 0 ? .warning : .info, "pool agreed with peer, session started",
                                  ["link.id": link.name, "session": "\(session)", "removed_keys": "\(removed)"]))]
    }

    private func publish(_ effects: [(LinkIndex, QuantumLinkEngine.Effect)], engines: [QuantumLinkEngine]) {
        var outputs: [Output] = []
        for (link, effect) in effects {
            switch effect {
            case .send(let kind, let payload): outputs.append(.send(link, kind, payload))
            case .log(let level, let message, let meta): outputs.append(.log(level, message, meta))
            case .block:
                break  // already handed to the link's distiller inside the engine
            case .verdict(let compromised, let reason): outputs.append(.verdict(link, compromised: compromised, reason: reason))
            }
        }
        reports.withLock { $0 = engines.map(\.currentReport) }
        guard !outputs.isEmpty else { return }
        outbox.withLock { $0 += outputs }
        waker.wake()
    }
}
