import CQKDSystem
import Foundation
import Logging
import QKDNode
import ServiceLifecycle
import Synchronization

/// The node's event loop as a service of the process's `ServiceGroup`: it waits for the KME's
/// port (when there is a KME), builds the runtime with it, and runs the loop on a thread of its
/// own (`zmq_poll` blocks; the cooperative pool must not). A graceful shutdown (SIGTERM, SIGINT,
/// or another service ending) asks the loop to stop through the stop pipe its poll watches; the
/// loop then says goodbye on every link, answers waiting key requests, joins the quantum worker
/// and closes the transport before `run` returns.
final class EventLoopService: Service, Sendable {
    private let logger: Logger
    private let kmePort: AsyncStream<Int>?
    private let pinTo: Int32?
    private let make: @Sendable (String?) -> NodeRuntime
    /// Why the loop did not run, if it did not.
    let failure = Mutex<String?>(nil)

    /// `make` builds the runtime on the loop's thread, given the KME's URL.
    init(logger: Logger, kmePort: AsyncStream<Int>?, pinTo: Int32?, make: @escaping @Sendable (String?) -> NodeRuntime) {
        self.logger = logger
        self.kmePort = kmePort
        self.pinTo = pinTo
        self.make = make
    }

    func run() async throws {
        var url: String?
        if let kmePort {
            // Stops waiting when the group shuts down (the KME failed to start).
            let port = await cancelWhenGracefulShutdown { () async -> Int? in
                var ports = kmePort.makeAsyncIterator()
                return await ports.next()
            }
            guard let port: Int = port ?? nil, port > 0 else {
                failure.withLock { $0 = "the KME (HTTPS) did not start" }
                return
            }
            url = "https://127.0.0.1:\(port)"
        }
        let kmeURL = url
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let thread = Thread { [make, pinTo, logger] in
                    if let pinTo, qkd_pin_thread_to_cpu(pinTo) != 0 {
                        logger.warning("cannot pin the event loop", metadata: ["cpu": "\(pinTo)"])
                    }
                    make(kmeURL).run()
                    done.resume()
                }
                thread.name = "event-loop"
                thread.start()
            }
        } onGracefulShutdown: {
            qkd_request_stop(SIGTERM)
        }
    }
}
