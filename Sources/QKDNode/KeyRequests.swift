import Foundation
import QKDAPI
import QKDCore
import QKDKeyPool
import QKDStore
import QKDTransport

/// ETSI GS QKD 014 key requests on their way from the KME's threads to the node's event loop
/// (which owns routing and the relay): the KME queues a request and wakes the loop; the loop
/// answers through the request's `reply`, once.
///
/// `@unchecked Sendable`: `queue` is touched only under `lock`; the waker is thread-safe.
public final class KeyRequests: @unchecked Sendable {
    /// `number` keys of `size` bits from `master` (attached here) for `slave` (at `destination`).
    public struct Request: Sendable {
        public var master: String
        public var slave: String
        public var destination: NodeID
        public var number: Int
        public var size: Int
        public var reply: @Sendable (Result<[ApplicationKey], KMEError>) -> Void
    }

    private let lock = NSLock()
    private var queue: [Request] = []
    private var closed = false
    private var unanswered = 0
    private let waker: (any Waker)?

    public init(waker: (any Waker)?) {
        self.waker = waker
    }

    /// Queues a request and waits for the event loop's answer.
    public func submit(master: String, slave: String, destination: NodeID, number: Int, size: Int) async -> Result<[ApplicationKey], KMEError> {
        await withCheckedContinuation { continuation in
            let request = Request(master: master, slave: slave, destination: destination, number: number, size: size) { [self] in
                lock.withLock { unanswered -= 1 }
                continuation.resume(returning: $0)
            }
            lock.lock()
            unanswered += 1
            if closed {
                lock.unlock()
                request.reply(.failure(KMEError(.serviceUnavailable, "the node is stopping")))
                return
            }
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
