#if canImport(Glibc)
import Glibc
#endif

/// The Earth as satellite passes need it: a sphere of radius 6,371 km for ground positions
/// (docs/physics.md: the difference from WGS-84 moves a pass by seconds, not minutes), the
/// WGS-84 gravitational parameter and equatorial radius, J2 for the nodal drift, and the Earth
/// rotation angle of the IERS Conventions (2010), eq. 5.15.
public enum Earth {
    public static let radiusKm = 6371.0
    /// GM (WGS-84), km³/s².
    public static let gravitationalParameter = 398_600.4418
    public static let equatorialRadiusKm = 6378.137
    /// Second zonal harmonic (EGM-96).
    public static let j2 = 1.082_626_68e-3
    /// Sidereal rotation rate (rad/s).
    public static let rotationRate = 7.292_115_9e-5

    /// The Earth rotation angle at `unixSeconds` (UT1 taken as UTC, within a second):
    /// θ = 2π (0.7790572732640 + 1.00273781191135448 (JD − 2451545.0)), IERS Conventions (2010)
    /// eq. 5.15. Radians in [0, 2π).
    public static func rotationAngle(unixSeconds: Double) -> Double {
        let daysSinceJ2000 = unixSeconds / 86_400 - 10_957.5  // JD 2451545.0 = 2000-01-01 12:00 UTC
        let turns = 0.779_057_273_264 + 0.002_737_811_911_354_48 * daysSinceJ2000 + daysSinceJ2000.truncatingRemainder(dividingBy: 1)
        let fraction = turns - turns.rounded(.down)
        return 2 * Double.pi * fraction
    }
}

/// A point or direction in kilometres, in an Earth-centred frame.
public struct Vector3: Equatable, Sendable {
    public var x, y, z: Double
    public init(_ x: Double, _ y: Double, _ z: Double) { (self.x, self.y, self.z) = (x, y, z) }
    public static func - (a: Vector3, b: Vector3) -> Vector3 { Vector3(a.x - b.x, a.y - b.y, a.z - b.z) }
    public func dot(_ o: Vector3) -> Double { x * o.x + y * o.y + z * o.z }
    public var length: Double { dot(self).squareRoot() }
    /// Rotated by `angle` about the z axis.
    public func rotatedZ(_ angle: Double) -> Vector3 {
        let c = cos(angle), s = sin(angle)
        return Vector3(c * x - s * y, s * x + c * y, z)
    }
}

/// A circular orbit: altitude, inclination, right ascension of the ascending node (RAAN) and
/// the satellite's argument of latitude (its angle from the ascending node) at an epoch. The
/// RAAN drifts by J2 at dΩ/dt = −(3/2) n J2 (R_E/a)² cos i, and the argument of latitude
/// advances at n [1 + (3/4) J2 (R_E/a)² (6 − 8 sin² i)] (the secular J2 rates of ω and M for
/// e = 0; Vallado, Fundamentals of Astrodynamics and Applications, 4th ed., eqs. 9-41 and
/// 9-43); n = √(GM/a³). A sun-synchronous orbit (Micius, Jinan-1) keeps its node's local time
/// through this drift.
public struct CircularOrbit: Hashable, Sendable {
    public var altitudeKm: Double
    public var inclinationDegrees: Double
    public var raanDegrees: Double
    public var argumentOfLatitudeDegrees: Double
    /// When the angles hold (Unix seconds).
    public var epoch: Double

    public init(altitudeKm: Double, inclinationDegrees: Double, raanDegrees: Double, argumentOfLatitudeDegrees: Double, epoch: Double) {
        self.altitudeKm = altitudeKm
        self.inclinationDegrees = inclinationDegrees
        self.raanDegrees = raanDegrees
        self.argumentOfLatitudeDegrees = argumentOfLatitudeDegrees
        self.epoch = epoch
    }

    /// Orbit radius a (km), measured from the spherical Earth's centre.
    public var radiusKm: Double { Earth.radiusKm + altitudeKm }
    /// Mean motion n (rad/s).
    public var meanMotion: Double { (Earth.gravitationalParameter / (radiusKm * radiusKm * radiusKm)).squareRoot() }
    var j2Factor: Double { 0.75 * Earth.j2 * pow(Earth.equatorialRadiusKm / radiusKm, 2) }
    var inclination: Double { inclinationDegrees * .pi / 180 }
    /// dΩ/dt (rad/s).
    public var raanRate: Double { -2 * meanMotion * j2Factor * cos(inclination) }
    /// du/dt (rad/s).
    public var argumentOfLatitudeRate: Double { meanMotion * (1 + j2Factor * (6 - 8 * pow(sin(inclination), 2))) }
    /// One revolution from node to node (s).
    public var periodSeconds: Double { 2 * .pi / argumentOfLatitudeRate }

    /// Position in the Earth-centred inertial frame (x towards the vernal equinox) at `t`.
    public func inertialPosition(at t: Double) -> Vector3 {
        let dt = t - epoch
        let u = argumentOfLatitudeDegrees * .pi / 180 + argumentOfLatitudeRate * dt
        let raan = raanDegrees * .pi / 180 + raanRate * dt
        let i = inclination
        let inPlane = Vector3(radiusKm * cos(u), radiusKm * sin(u) * cos(i), radiusKm * sin(u) * sin(i))
        return inPlane.rotatedZ(raan)
    }

    /// Position in the Earth-fixed frame (x through latitude 0, longitude 0) at `t`.
    public func earthFixedPosition(at t: Double) -> Vector3 {
        inertialPosition(at: t).rotatedZ(-Earth.rotationAngle(unixSeconds: t))
    }
}

/// A ground station: where it is (on the spherical Earth) and the lowest elevation at which
/// it tracks a satellite.
public struct GroundSite: Hashable, Sendable {
    public var latitudeDegrees: Double
    public var longitudeDegrees: Double
    public var altitudeMetres: Double
    public var minimumElevationDegrees: Double
    /// The station works by night only (`night_only`): a pass with the Sun above −6° there at
    /// its start, culmination or end is not used (Micius's and Jinan-1's stations worked so).
    public var nightOnly: Bool

    public init(latitudeDegrees: Double, longitudeDegrees: Double, altitudeMetres: Double = 0, minimumElevationDegrees: Double = 10,
                nightOnly: Bool = false) {
        self.latitudeDegrees = latitudeDegrees
        self.longitudeDegrees = longitudeDegrees
        self.altitudeMetres = altitudeMetres
        self.minimumElevationDegrees = minimumElevationDegrees
        self.nightOnly = nightOnly
    }

    var latitude: Double { latitudeDegrees * .pi / 180 }
    var longitude: Double { longitudeDegrees * .pi / 180 }

    /// Earth-fixed position (km).
    public var position: Vector3 {
        let r = Earth.radiusKm + altitudeMetres / 1000
        return Vector3(r * cos(latitude) * cos(longitude), r * cos(latitude) * sin(longitude), r * sin(latitude))
    }

    /// Range, elevation and azimuth of a point given in the Earth-fixed frame (local
    /// east-north-up frame of the site's normal on the sphere).
    public func look(at target: Vector3) -> LookAngles {
        let d = target - position
        let range = d.length
        let up = Vector3(cos(latitude) * cos(longitude), cos(latitude) * sin(longitude), sin(latitude))
        let east = Vector3(-sin(longitude), cos(longitude), 0)
        let north = Vector3(-sin(latitude) * cos(longitude), -sin(latitude) * sin(longitude), cos(latitude))
        let elevation = asin(max(-1, min(1, d.dot(up) / range)))
        var azimuth = atan2(d.dot(east), d.dot(north))
        if azimuth < 0 { azimuth += 2 * .pi }
        return LookAngles(rangeKm: range, elevationDegrees: elevation * 180 / .pi, azimuthDegrees: azimuth * 180 / .pi)
    }
}

/// Where a station sees a satellite.
public struct LookAngles: Equatable, Sendable {
    public var rangeKm: Double
    public var elevationDegrees: Double
    public var azimuthDegrees: Double

    /// The range at which a satellite at `altitudeKm` on a circular orbit is seen at
    /// `elevationDegrees` from a station at the sphere's surface (the law of cosines in the
    /// triangle Earth centre, station, satellite): ρ = √((R sin e)² + 2Rh + h²) − R sin e.
    public static func range(altitudeKm h: Double, elevationDegrees: Double, stationAltitudeKm s: Double = 0) -> Double {
        let r = Earth.radiusKm + s, a = Earth.radiusKm + h
        let rs = r * sin(elevationDegrees * .pi / 180)
        return (rs * rs + a * a - r * r).squareRoot() - rs
    }

    /// The inverse: the elevation at which a satellite at `altitudeKm` is seen at `rangeKm`
    /// (sin e = (a² − r² − ρ²) / (2 r ρ)).
    public static func elevation(altitudeKm h: Double, rangeKm rho: Double, stationAltitudeKm s: Double = 0) -> Double {
        let r = Earth.radiusKm + s, a = Earth.radiusKm + h
        return asin(max(-1, min(1, (a * a - r * r - rho * rho) / (2 * r * rho)))) * 180 / .pi
    }
}
