import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A libzmq failure: what was attempted and libzmq's own reason.
public struct ZMQError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32
    public let reason: String

    init(_ operation: String) {
        self.operation = operation
        self.errno = zmq_errno()
        self.reason = String(cString: zmq_strerror(self.errno))
    }

    /// A failure of QKDNet's own use of libzmq (no errno).
    public init(operation: String, reason: String) {
        self.operation = operation
        self.errno = 0
        self.reason = reason
    }

    public var description: String { "\(operation): \(reason) (errno \(errno))" }
}

/// A libzmq context. Sockets hold a strong reference to it, so it is terminated only after
/// the last socket closed (terminating earlier blocks forever in zmq_ctx_term).
public final class ZMQContext {
    let handle: UnsafeMutableRawPointer

    public init(ioThreads: Int32 = 1) {
        handle = zmq_ctx_new()
        zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads)
    }

    deinit { zmq_ctx_term(handle) }
}

/// One libzmq socket. Not thread-safe and not Sendable: it MUST stay on the thread that
/// created it.
public final class ZMQSocket {
    public enum Kind {
        case router, dealer

        var raw: Int32 {
            switch self {
            case .router: ZMQ_ROUTER
            case .dealer: ZMQ_DEALER
            }
        }
    }

    let context: ZMQContext
    private(set) var handle: UnsafeMutableRawPointer?

    public init(context: ZMQContext, kind: Kind) throws(ZMQError) {
        self.context = context
        guard let socket = zmq_socket(context.handle, kind.raw) else { throw ZMQError("zmq_socket") }
        handle = socket
        try setOption(ZMQ_LINGER, Int32(0))
    }

    deinit { close() }

    public func close() {
        if let handle { zmq_close(handle) }
        handle = nil
    }

    public func setOption(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, _ value: Int64) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, bytes: [UInt8]) throws(ZMQError) {
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    /// Sends a multipart message without blocking. Returns false if it could not be queued
    /// (no connected peer, or the peer's queue is full): the message is dropped.
    @discardableResult
    public func send(_ parts: [[UInt8]]) -> Bool {
        for (i, part) in parts.enumerated() {
            var flags = ZMQ_DONTWAIT
            if i < parts.count - 1 { flags |= ZMQ_SNDMORE }
            let rc = part.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
            if rc < 0 { return false }
        }
        return true
    }

    /// Receives one whole multipart message if one is waiting, without blocking. At most
    /// `maxParts` parts are kept; the rest are read and discarded (reported by `truncated`).
    public func receive(maxParts: Int = 8) -> (parts: [[UInt8]], truncated: Bool)? {
        receiveMessage(maxParts: maxParts).map { ($0.parts, $0.truncated) }
    }

    /// `receive`, with the user its connection authenticated as (the ZAP handler's answer,
    /// libzmq's `User-Id` property of the message; nil on a connection without ZAP).
    public func receiveMessage(maxParts: Int = 8) -> (parts: [[UInt8]], truncated: Bool, user: String?)? {
        var parts: [[UInt8]] = []
        var truncated = false
        var first = true
        var user: String?
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let rc = zmq_msg_recv(&msg, handle, first ? ZMQ_DONTWAIT : 0)
            if rc < 0 {
                // Nothing waiting (EAGAIN) or interrupted: only possible on the first part.
                return first ? nil : (parts, true, user)
            }
            first = false
            if let property = zmq_msg_gets(&msg, "User-Id") { user = String(cString: property) }
            if parts.count < maxParts {
                let size = zmq_msg_size(&msg)
                if size > 0, let data = zmq_msg_data(&msg) {
                    parts.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
                } else {
                    parts.append([])
                }
            } else {
                truncated = true
            }
            if zmq_msg_more(&msg) == 0 { break }
        }
        return (parts, truncated, user)
    }

    public var pollHandle: UnsafeMutableRawPointer? { handle }
}

/// Waits until one of `sockets` is readable, one of `fds` is readable, or `timeoutMs`
/// passes. Returns the indices (sockets first, then fds) that are readable.
public func zmqPoll(sockets: [ZMQSocket], fds: [Int32], timeoutMs: Int) -> [Int] {
    var items: [zmq_pollitem_t] = sockets.map {
        zmq_pollitem_t(socket: $0.pollHandle, fd: -1, events: Int16(ZMQ_POLLIN), revents: 0)
    }
    items += fds.map { zmq_pollitem_t(socket: nil, fd: $0, events: Int16(ZMQ_POLLIN), revents: 0) }
    let rc = zmq_poll(&items, Int32(items.count), timeoutMs)
    guard rc > 0 else { return [] }
    return items.indices.filter { items[$0].revents & Int16(ZMQ_POLLIN) != 0 }
}

/// The libzmq version, as "major.minor.patch".
public func zmqVersion() -> String {
    var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return "\(major).\(minor).\(patch)"
}
