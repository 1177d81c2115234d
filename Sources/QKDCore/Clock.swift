#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point on a monotonic time line, in nanoseconds. Protocol cores take these as
/// parameters; they never read a clock themselves.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    public func advanced(byMilliseconds ms: UInt64) -> Instant {
        Instant(nanoseconds: nanoseconds &+ ms &* 1_000_000)
    }

    public func advanced(byNanoseconds ns: UInt64) -> Instant {
        Instant(nanoseconds: nanoseconds &+ ns)
    }

    /// Nanoseconds from `earlier` to `self`; zero if `earlier` is later.
    public func nanoseconds(since earlier: Instant) -> UInt64 {
        nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0
    }

    public var description: String { "\(nanoseconds)ns" }
}

/// A source of monotonic time. Shells pass one in; tests use `ManualClock`.
public protocol QKDClock: Sendable {
    func now() -> Instant
}

/// CLOCK_MONOTONIC.
public struct SystemClock: QKDClock {
    public init() {}

    public func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Instant(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }
}

/// Wall-clock seconds since the Unix epoch, for reports only (never for protocol timing).
public func wallClockSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
