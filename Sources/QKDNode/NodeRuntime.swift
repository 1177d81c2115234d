import Logging
import QKDCore
import QKDTransport
import QKDWire
#if canImport(Glibc)
import Glibc
#endif

/// The shell around `NodeCore`: it owns the transport, reads the clock, and carries out the
/// core's directives. It runs on the thread that calls `run()` until the core says stop.
public final class NodeRuntime {
    private var core: NodeCore
    private let transport: any NodeTransport
    private let clock: any QKDClock
    private var logger: Logger
    private let announceReady: (String) -> Void
    private let worker: QuantumWorker?
    /// Longest wait in one poll, so a missed wake-up costs at most this much.
    private let maxWaitMs = 100

    /// With `quantum` true the node runs its links' quantum layer on a worker thread.
    public init(core: NodeCore, transport: any NodeTransport, clock: any QKDClock, logger: Logger, quantum: Bool = true,
                announceReady: @escaping (String) -> Void) {
        worker = quantum ? QuantumWorker(node: core.configuration.node, topology: core.configuration.topology, clock: clock,
                                         waker: transport.makeWaker()) : nil
        self.core = core
        self.transport = transport
        self.clock = clock
        self.logger = logger
        self.announceReady = announceReady
    }

    /// The readiness line a node prints, once, when all its links are up.
    public static func readinessLine(node: String, pid: Int32, linksUp: Int, linksTotal: Int) -> String {
        "QKDNET READY node=\(node) pid=\(pid) links=\(linksUp)/\(linksTotal)"
    }

    /// Runs the event loop until a stop is requested, then closes the transport.
    public func run() {
        worker?.start()
        var running = execute(core.handle(.tick, at: clock.now()))
        while running {
            let now = clock.now()
            var timeout = maxWaitMs
            if let deadline = core.nextDeadline() {
                let ns = deadline.nanoseconds(since: now)
                timeout = min(maxWaitMs, Int((ns + 999_999) / 1_000_000))
            }
            for event in transport.wait(timeoutMs: timeout) where running {
                if event == .wake {
                    running = drainWorker()
                } else {
                    running = execute(core.handle(translate(event), at: clock.now()))
                }
            }
            if running { running = execute(core.handle(.tick, at: clock.now())) }
        }
        worker?.stop()
        transport.close()
        logger.notice("stopped")
    }

    private func translate(_ event: TransportEvent) -> NodeCore.Event {
        switch event {
        case .peer(let from, let frame): .peerFrame(from: from, bytes: frame)
        case .control(let client, let request): .control(client: client, request: request)
        case .malformed(let reason): .malformed(reason: reason)
        case .stopRequested: .stopRequested
        case .wake: .tick
        }
    }

    /// Sends what the quantum worker queued and logs what it reported.
    private func drainWorker() -> Bool {
        guard let worker else { return true }
        for output in worker.takeOutputs() {
            switch output {
            case .send(let link, let kind, let payload):
                if !execute(core.handle(.fromWorker(link, kind, payload), at: clock.now())) { return false }
            case .log(let level, let message, let metadata):
                logger.log(level: level.swiftLog, "\(message)", metadata: metadata.mapValues { .string($0) })
            }
        }
        return true
    }

    /// Carries out directives in order; returns false once one says stop.
    private func execute(_ directives: [NodeCore.Directive]) -> Bool {
        for directive in directives {
            switch directive {
            case .send(let frame, let peer):
                transport.send(frame, to: peer)
            case .reply(let bytes, let client):
                transport.reply(bytes, to: client)
            case .log(let level, let message, let metadata):
                logger.log(level: level.swiftLog, "\(message)", metadata: metadata.mapValues { .string($0) })
            case .ready(let up, let total):
                let line = NodeRuntime.readinessLine(node: core.configuration.node.rawValue,
                                                     pid: core.configuration.pid, linksUp: up, linksTotal: total)
                logger.notice("ready", metadata: ["links": "\(up)/\(total)"])
                announceReady(line)
            case .stop:
                return false
            case .quantum(let input):
                worker?.submit(input)
            case .replyPools(let client):
                var reports = worker?.snapshot() ?? []
                for i in reports.indices {
                    reports[i].state = core.monitor.records.first { $0.link.name == reports[i].link }?.state.rawValue ?? "down"
                }
                transport.reply(ControlCodec.encode(ControlReply(pools: reports)), to: client)
            }
        }
        return true
    }
}

extension NodeCore.LogLevel {
    var swiftLog: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }
}
