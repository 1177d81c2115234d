import Foundation

/// Polls `condition` every 10 ms until it holds or `seconds` of wall time pass; returns whether
/// it held. The one way tests wait on something another thread or process does: on a
/// condition with a deadline, never a bare sleep. Callers state the deadline's reason.
public func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}
