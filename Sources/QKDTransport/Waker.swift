#if canImport(Glibc)
import Glibc
#endif
import QKDCore

/// Something another thread calls to interrupt a transport's `wait`.
public protocol Waker: Sendable {
    func wake()
}

/// A non-blocking pipe: `wake()` writes a byte; the event loop polls the read end and drains it.
/// `@unchecked Sendable`: the two descriptors are immutable after init, and write(2) and
/// read(2) on a pipe are safe from any thread.
public final class PipeWaker: Waker, @unchecked Sendable {
    public let readFD: Int32
    let writeFD: Int32

    public init() {
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    public func wake() {
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    /// Empties the pipe (called by the event loop after it woke).
    public func drain() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readFD, &buffer, buffer.count) > 0 {}
    }
}

/// Wakes a node on an `InMemoryNetwork`.
public struct InMemoryWaker: Waker {
    let network: InMemoryNetwork
    let node: NodeID

    public func wake() { network.deliver(.wake, to: node) }
}
