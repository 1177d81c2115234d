import QKDCore
import QKDLink
import QKDTransport
import QKDWire

/// Where a node's quantum layer runs, as the event loop sees it: on the worker thread
/// (`QuantumWorker`) or inline on the loop's own thread (`InlineQuantumLayer`).
protocol QuantumDriver: AnyObject {
    func start()
    /// Hands an input to the layer (a peer's message, a link change).
    func submit(_ input: QuantumLayer.Input)
    /// Takes every output queued since the last call.
    func takeOutputs() -> [QuantumLayer.Output]
    /// Every link's report, as of the layer's last step.
    func snapshot() -> [QuantumLinkReport]
    /// Steps the layer to `now` if it runs on the caller's thread; nothing for a thread of its own.
    func poll(at now: Instant)
    /// When `poll` must next run (nil: the layer keeps its own time).
    func nextDeadline(after now: Instant) -> Instant?
    /// Stops the layer; when this returns it touches the pools no more.
    func stop()
}

extension QuantumWorker: QuantumDriver {
    func poll(at now: Instant) {}
    func nextDeadline(after now: Instant) -> Instant? { nil }
}

/// The quantum layer on the event loop's thread: each input is handled at once and `poll`
/// emits the frames that are due. For the deterministic in-process network, where one thread
/// steps every node on a manual clock; `qkd-node` uses the worker thread.
final class InlineQuantumLayer: QuantumDriver {
    private var layer: QuantumLayer
    private var pools: NodePools
    private let clock: any QKDClock
    private let waker: any Waker
    private var outbox: [QuantumLayer.Output] = []

    init(layer: QuantumLayer, pools: NodePools, clock: any QKDClock, waker: any Waker) {
        self.layer = layer
        self.pools = pools
        self.clock = clock
        self.waker = waker
    }

    func start() {}

    func submit(_ input: QuantumLayer.Input) {
        queue(layer.handle(input, at: clock.now(), pools: &pools))
    }

    /// Outputs wait for the loop's next drain; the wake-up makes sure there is one.
    private func queue(_ outputs: [QuantumLayer.Output]) {
        guard !outputs.isEmpty else { return }
        outbox += outputs
        waker.wake()
    }

    func takeOutputs() -> [QuantumLayer.Output] {
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    func snapshot() -> [QuantumLinkReport] { layer.reports }

    func poll(at now: Instant) {
        queue(layer.tick(at: now, pools: &pools))
    }

    func nextDeadline(after now: Instant) -> Instant? { layer.nextDeadline(after: now) }

    func stop() {}
}
