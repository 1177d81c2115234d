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
        case stop
    }

    public enum Output: Sendable {
        case send(LinkIndex, MessageKind, [UInt8])
        case log(NodeCore.LogLevel, String, [String: String])
    }

    private let condition = NSCondition()
    private var inbox: [Input] = []
    private let outbox = Mutex<[Output]>([])
    private let reports = Mutex<[QuantumLinkReport]>([])
    private let finished = Mutex<Bool>(false)
    private let waker: any Waker
    private let clock: any QKDClock
    private let keyStore: LinkKeyStore
    private var thread: Thread?


    public init(node: NodeID, topology: Topology, clock: any QKDClock, waker: any Waker, keyStore: LinkKeyStore) {
        self.waker = waker
        self.clock = clock
        self.keyStore = keyStore
        let now = clock.now()
        let engines = topology.links(of: node).map {
            QuantumLinkEngine(link: $0, node: node, topologySeed: topology.seed, timeScale: topology.timeScale, now: now)
        }
        reports.withLock { $0 = engines.map(\.currentReport) }
        let thread = Thread { [self] in
            _ = qkd_unpin_thread()
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
        var sessions: [LinkIndex: UInt64] = [:]
        var running = true
        while running {
            let now = clock.now()
            var effects: [(LinkIndex, QuantumLinkEngine.Effect)] = []
            for i in engines.indices {
                effects += engines[i].tick(at: now).map { (engines[i].link.index, $0) }
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
                case .message(let link, let kind, let payload):
                    if let i = position[link] { effects += engines[i].received(kind, payload, at: at).map { (link, $0) } }
                case .linkUp(let link):
                    if let i = position[link] {
                        let session = (sessions[link] ?? 0) + 1
                        sessions[link] = session
                        // Both ends start a new session together; until pools are persisted and
                        // synchronised, both start from an empty pool.
                        keyStore.reset(engines[i].link.name)
                        engines[i].start(session: session, at: at)
                    }
                case .linkDown(let link):
                    if let i = position[link] { engines[i].stop(at: at) }
                case .stop:
                    running = false
                }
            }
            publish(effects, engines: engines)
        }
        finished.withLock { $0 = true }
    }

    private func publish(_ effects: [(LinkIndex, QuantumLinkEngine.Effect)], engines: [QuantumLinkEngine]) {
        var outputs: [Output] = []
        for (link, effect) in effects {
            switch effect {
            case .keys(let keys):
                if let engine = engines.first(where: { $0.link.index == link }) { keyStore.deposit(keys, link: engine.link.name) }
            case .send(let kind, let payload): outputs.append(.send(link, kind, payload))
            case .log(let level, let message, let meta): outputs.append(.log(level, message, meta))
            case .block:
                break  // already handed to the link's distiller inside the engine
            }
        }
        reports.withLock { $0 = engines.map(\.currentReport) }
        guard !outputs.isEmpty else { return }
        outbox.withLock { $0 += outputs }
        waker.wake()
    }
}
