import QKDCore
import Synchronization

/// A clock that moves only when the test moves it: every instant a test sees is one it chose.
public final class ManualClock: QKDClock, Sendable {
    private let current: Mutex<Instant>

    public init(_ start: Instant = Instant(nanoseconds: 1_000_000_000)) { current = Mutex(start) }

    public func now() -> Instant { current.withLock { $0 } }

    /// Moves the clock to `instant` (never back).
    public func set(_ instant: Instant) { current.withLock { $0 = max($0, instant) } }

    public func advance(byNanoseconds ns: UInt64) { current.withLock { $0 = $0.advanced(byNanoseconds: ns) } }
}
