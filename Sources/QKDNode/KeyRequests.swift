import Foundation
import QKDAPI
import QKDCore
import QKDKeyPool
import QKDStore
import QKDTopology
import QKDTransport

/// ETSI GS QKD 014 key requests on their way from the KME's threads to the node's event loop
/// (which owns routing and the relay): the KME queues a request and wakes the loop; the loop
/// answers through the request's `reply`, once. Bounded: a master SAE with
/// `maxPerSAE` requests unanswered, or a KME with `maxTotal`, gets 503 at once (nothing queued),
/// so a hostile SAE cannot grow the queue or starve the others (topology `kme` limits).
///
/// `@unchecked Sendable`: `queue` and the counts are touched only under `lock`; the waker is
/// thread-safe.
public final class KeyRequests: @unchecked Sendable {
    /// `number` keys of `size` bits from `master` (attached here) for `slave` (at `destination`).
    public struct Request: Sendable {
        public var master: String
        public var slave: String
        public var destination: NodeID
        public var number: Int
        public var size: Int
        /// How the keys are made (`hybrid`: with an ML-KEM secret of the two KMEs).
        public var policy: KeyPolicy = .qkd
        public var reply: @Sendable (Result<[ApplicationKey], KMEError>) -> Void
    }

    private let lock = NSLock()
    private var queue: [Request] = []
    private var closed = false
    private var unanswered = 0
    private var unansweredBySAE: [String: Int] = [:]
    private let waker: (any Waker)?
    public let maxPerSAE: Int
    public let maxTotal: Int
    /// Requests answered 503 because a bound was reached (for `status`).
    public var refused: Int { lock.withLock { refusedCount } }
    private var refusedCount = 0

    public init(waker: (any Waker)?, maxPerSAE: Int = KMELimits().maxRequestsPerSAE, maxTotal: Int = KMELimits().maxRequests) {
        self.waker = waker
        self.maxPerSAE = maxPerSAE
        self.maxTotal = maxTotal
    }

    /// Queues a request and waits for the event loop's answer.
    public func submit(master: String, slave: String, destination: NodeID, number: Int, size: Int,
                       policy: KeyPolicy = .qkd) async -> Result<[ApplicationKey], KMEError> {
        await withCheckedContinuation { continuation in
            let request = Request(master: master, slave: slave, destination: destination, number: number, size: size, policy: policy) { [self] in
                lock.withLock {
                    unanswered -= 1
                    unansweredBySAE[master, default: 1] -= 1
                    if unansweredBySAE[master] == 0 { unansweredBySAE[master] = nil }
                }
                continuation.resume(returning: $0)
            }
            lock.lock()
            let refusal: String?
            if closed {
                refusal = "the node is stopping"
            } else if unansweredBySAE[master, default: 0] >= maxPerSAE {
                refusal = "SAE '\(master)' already has \(maxPerSAE) key requests in flight (kme.max_requests_per_sae): retry when one is answered"
            } else if unanswered >= maxTotal {
                refusal = "the KME has \(maxTotal) key requests in flight (kme.max_requests): retry later"
            } else {
                refusal = nil
            }
            if let refusal {
                if !closed { refusedCount += 1 }
                lock.unlock()
                continuation.resume(returning: .failure(KMEError(.serviceUnavailable, refusal)))
                return
            }
            unanswered += 1
            unansweredBySAE[master, default: 0] += 1
            queue.append(request)
            lock.unlock()
            waker?.wake()
        }
    }

    /// Requests submitted and not yet answered (a test stepping the event loop by hand waits
    /// for a request to arrive, then steps until it is answered).
    public var outstanding: Int { lock.withLock { unanswered } }

    /// Everything queued since the last call (the event loop's side).
    func takeAll() -> [Request] {
        lock.lock()
        defer { lock.unlock() }
        let out = queue
        queue.removeAll()
        return out
    }

    /// Refuses everything queued and everything to come (the node is stopping).
    func close() {
        lock.lock()
        closed = true
        let left = queue
        queue.removeAll()
        lock.unlock()
        for r in left { r.reply(.failure(KMEError(.serviceUnavailable, "the node is stopping"))) }
    }
}
