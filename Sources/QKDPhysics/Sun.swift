#if canImport(Glibc)
import Glibc
#endif

/// The Sun's direction, precise to about 0.01° over 1950-2050: the low-precision formulas of
/// the Astronomical Almanac (section C, "Low precision formulas for the Sun"), with n the days
/// from J2000.0: mean longitude L = 280.460° + 0.9856474° n, mean anomaly g = 357.528° +
/// 0.9856003° n, ecliptic longitude λ = L + 1.915° sin g + 0.020° sin 2g, obliquity ε =
/// 23.439° − 0.0000004° n; right ascension and declination from λ and ε. Turned into the
/// Earth-fixed frame by the Earth rotation angle (as the orbits are: the equinox's precession
/// since 2000, under 0.4°, is left out), it gives the Sun's elevation at a station, which decides
/// whether a pass is by day or by night.
public enum Sun {
    /// The unit vector towards the Sun in the Earth-fixed frame at `unixSeconds`.
    public static func earthFixedDirection(at unixSeconds: Double) -> Vector3 {
        let n = unixSeconds / 86_400 - 10_957.5
        let degrees = Double.pi / 180
        let l = (280.460 + 0.985_647_4 * n).truncatingRemainder(dividingBy: 360)
        let g = (357.528 + 0.985_600_3 * n).truncatingRemainder(dividingBy: 360) * degrees
        let lambda = (l + 1.915 * sin(g) + 0.020 * sin(2 * g)) * degrees
        let epsilon = (23.439 - 0.000_000_4 * n) * degrees
        let inertial = Vector3(cos(lambda), cos(epsilon) * sin(lambda), sin(epsilon) * sin(lambda))
        return inertial.rotatedZ(-Earth.rotationAngle(unixSeconds: unixSeconds))
    }
}

extension GroundSite {
    /// The Sun's elevation above the station's horizon (degrees) at `unixSeconds`.
    public func sunElevationDegrees(at unixSeconds: Double) -> Double {
        let up = Vector3(cos(latitude) * cos(longitude), cos(latitude) * sin(longitude), sin(latitude))
        return asin(max(-1, min(1, Sun.earthFixedDirection(at: unixSeconds).dot(up)))) * 180 / .pi
    }

    /// Whether the Sun stays below −6° at the station at `pass`'s start, culmination and end.
    public func isNight(during pass: SatellitePass) -> Bool {
        [pass.start, pass.culmination, pass.end].allSatisfy { !SkyBackground.isDay(sunElevationDegrees: sunElevationDegrees(at: $0)) }
    }

    /// Whether the station uses `pass`: always, or by night only (`nightOnly`).
    public func uses(_ pass: SatellitePass) -> Bool { !nightOnly || isNight(during: pass) }
}

/// Light from the sky that reaches a ground station's detectors: counts per second per
/// detector by night and by day (`background_night_cps`, `background_day_cps` of a free-space
/// channel). It is day while the Sun stands above −6° at the station (the end of civil
/// twilight), night below. A pulse's background click probability is cps / source rate per
/// detector; with the detector's own p_d a pulse's vacuum yield becomes
/// Y0' = 1 − (1 − p_d − cps/R)² (two detectors, docs/physics.md).
public struct SkyBackground: Hashable, Sendable {
    public var nightCountsPerSecond: Double
    public var dayCountsPerSecond: Double
    /// Sun elevation (degrees) above which it is day.
    public static let daySunElevationDegrees = -6.0
    public static let dark = SkyBackground(nightCountsPerSecond: 0, dayCountsPerSecond: 0)

    public init(nightCountsPerSecond: Double, dayCountsPerSecond: Double) {
        self.nightCountsPerSecond = nightCountsPerSecond
        self.dayCountsPerSecond = dayCountsPerSecond
    }

    public static func isDay(sunElevationDegrees: Double) -> Bool { sunElevationDegrees > daySunElevationDegrees }

    public func countsPerSecond(sunElevationDegrees: Double) -> Double {
        SkyBackground.isDay(sunElevationDegrees: sunElevationDegrees) ? dayCountsPerSecond : nightCountsPerSecond
    }

    /// The vacuum yield per pulse with the detectors' own yield `y0` and this background at
    /// `countsPerSecond` per detector, for a source of `sourceRateHz`.
    public static func yield(darkCountProbability y0: Double, countsPerSecond: Double, sourceRateHz: Double) -> Double {
        guard countsPerSecond > 0, sourceRateHz > 0 else { return y0 }
        let perDetector = 1 - (1 - min(1, max(0, y0))).squareRoot()
        let p = min(1, perDetector + countsPerSecond / sourceRateHz)
        return 1 - (1 - p) * (1 - p)
    }
}
