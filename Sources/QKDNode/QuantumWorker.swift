import CQKDSystem
import Foundation
import QKDCore
import QKDLink
import QKDTopology
import QKDTransport
import QKDWire
import Synchronization

/// The thread that runs a node's quantum layer (`QuantumLayer`: every link's engine and pool
/// agreement), so the event loop (pinned, latency-sensitive) never computes a frame. Inputs
/// arrive through `submit`; outputs are queued for the event loop, which `waker` interrupts; a
/// report snapshot is kept for control queries. The shell only waits, steps the layer and
/// queues what it returns.
///
/// `@unchecked Sendable`: `condition` guards `inbox` and `stopping`; `outbox` and `reports` are
/// `Mutex`es; the layer is confined to the worker thread; `finished` is a semaphore.
public final class QuantumWorker: @unchecked Sendable {
    public typealias Input = QuantumLayer.Input
    public typealias Output = QuantumLayer.Output

    private let condition = NSCondition()
    private var inbox: [Input] = []
    private var stopping = false
    private let outbox = Mutex<[Output]>([])
    private let reports = Mutex<[QuantumLinkReport]>([])
    private let finished = DispatchSemaphore(value: 0)
    private let started = Mutex<Bool>(false)
    private let waker: any Waker
    private let clock: any QKDClock
    private let pools: NodePools
    private var thread: Thread?
    /// How much lower than the event loop the worker thread runs (nice increment).
    static let niceIncrement: Int32 = 10

    public init(node: NodeID, topology: Topology, clock: any QKDClock, waker: any Waker, pools: NodePools) {
        self.waker = waker
        self.clock = clock
        self.pools = pools
        let layer = QuantumLayer(node: node, topology: topology, epoch: pools.starts, now: clock.now(),
                                 authenticationKeys: pools.authenticationKeys)
        reports.withLock { $0 = layer.reports }
        let thread = Thread { [self] in
            _ = qkd_unpin_thread()
            // Below the event loop: when the CPU is short (a large network on few cores), the
            // classical control plane (heartbeats, routing, relays, the KME) keeps its pace and
            // the quantum layer falls behind instead (its lag is reported).
            _ = qkd_lower_thread_priority(QuantumWorker.niceIncrement)
            run(layer)
            finished.signal()
        }
        thread.name = "quantum-worker"
        self.thread = thread
    }

    public func start() {
        started.withLock { $0 = true }
        thread?.start()
    }

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

    /// Stops the thread and waits until it has left its loop: when this returns the worker
    /// touches the pools no more (the store may be closed). The step under way finishes first.
    public func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        guard started.withLock({ $0 }) else { return }
        finished.wait()
    }

    private func run(_ initial: QuantumLayer) {
        var layer = initial
        var pools = self.pools
        while true {
            let now = clock.now()
            publish(layer.tick(at: now, pools: &pools), layer: layer)
            let waitNs = layer.nextDeadline(after: now).map { $0.nanoseconds(since: now) } ?? 100_000_000
            condition.lock()
            if inbox.isEmpty && !stopping {
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(min(waitNs, 100_000_000)) / 1e9))
            }
            let inputs = inbox
            inbox.removeAll()
            let stop = stopping
            condition.unlock()
            if stop { return }
            var outputs: [Output] = []
            for input in inputs { outputs += layer.handle(input, at: clock.now(), pools: &pools) }
            publish(outputs, layer: layer)
        }
    }

    private func publish(_ outputs: [Output], layer: QuantumLayer) {
        reports.withLock { $0 = layer.reports }
        guard !outputs.isEmpty else { return }
        outbox.withLock { $0 += outputs }
        waker.wake()
    }
}
