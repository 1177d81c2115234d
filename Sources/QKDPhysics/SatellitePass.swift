/// One pass of a satellite over a ground station: the stretch of time it is above the station's
/// minimum elevation.
public struct SatellitePass: Equatable, Sendable {
    /// Unix seconds; a pass already under way (or not over) at the window's edge is cut there.
    public var start: Double
    public var end: Double
    public var culmination: Double
    public var maximumElevationDegrees: Double
    /// The range at culmination: on a circular orbit range falls as elevation rises, so it is
    /// the pass's least.
    public var minimumRangeKm: Double

    public var durationSeconds: Double { end - start }
}

/// Finds passes from the orbit alone (no I/O, no clock): elevation sampled every `step`
/// seconds, each crossing of the minimum elevation refined by bisection to 10 ms, each
/// culmination by golden-section search. A pass whose time above the minimum is shorter than
/// `step` may be missed (a graze of a few seconds carries no key).
public enum PassPredictor {
    public static func passes(of orbit: CircularOrbit, over site: GroundSite, from: Double, to: Double, step: Double = 10) -> [SatellitePass] {
        func elevation(_ t: Double) -> Double { site.look(at: orbit.earthFixedPosition(at: t)).elevationDegrees - site.minimumElevationDegrees }
        func crossing(_ a: Double, _ b: Double) -> Double {
            // elevation(a) and elevation(b) have opposite signs.
            var (lo, hi) = (a, b)
            let rising = elevation(a) < 0
            while hi - lo > 0.01 {
                let mid = (lo + hi) / 2
                if (elevation(mid) < 0) == rising { lo = mid } else { hi = mid }
            }
            return (lo + hi) / 2
        }
        var out: [SatellitePass] = []
        var t = from
        var previous = elevation(t)
        var start: Double? = previous >= 0 ? from : nil
        while t < to {
            let next = min(t + step, to)
            let e = elevation(next)
            if previous < 0 && e >= 0 { start = crossing(t, next) }
            if previous >= 0 && e < 0, let s = start {
                out.append(pass(orbit, site, start: s, end: crossing(t, next)))
                start = nil
            }
            previous = e
            t = next
        }
        if let s = start, to > s { out.append(pass(orbit, site, start: s, end: to)) }
        return out
    }

    /// The culmination of a pass between `start` and `end` (golden-section search for the
    /// greatest elevation: one maximum within a pass of a circular orbit).
    static func pass(_ orbit: CircularOrbit, _ site: GroundSite, start: Double, end: Double) -> SatellitePass {
        func look(_ t: Double) -> LookAngles { site.look(at: orbit.earthFixedPosition(at: t)) }
        let g = (5.0.squareRoot() - 1) / 2
        var (a, b) = (start, end)
        while b - a > 0.01 {
            let c = b - g * (b - a), d = a + g * (b - a)
            if look(c).elevationDegrees > look(d).elevationDegrees { b = d } else { a = c }
        }
        let top = (a + b) / 2, at = look(top)
        return SatellitePass(start: start, end: end, culmination: top, maximumElevationDegrees: at.elevationDegrees, minimumRangeKm: at.rangeKm)
    }
}
