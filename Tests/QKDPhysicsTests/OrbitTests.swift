#if canImport(Glibc)
import Glibc
#endif
import QKDPhysics
import Testing

/// Satellite geometry against calculations independent of the propagation: the law of cosines
/// between range and elevation, the Earth rotation angle's definition, Kepler's period, the
/// sun-synchronous drift, and an overhead pass's duration from its central angle.
@Suite struct OrbitTests {
    /// 2000-01-01 12:00 UTC (J2000.0).
    static let j2000 = 946_728_000.0

    @Test func theEarthRotationAngleIsTheIERSOne() {
        // θ(J2000.0) = 2π · 0.7790572732640 = 280.4606°; one sidereal day later the same angle.
        #expect(abs(Earth.rotationAngle(unixSeconds: Self.j2000) * 180 / .pi - 280.460_618) < 1e-5)
        let siderealDay = 86_400 / 1.002_737_811_911_354_48
        let later = Earth.rotationAngle(unixSeconds: Self.j2000 + 1000 * siderealDay)
        #expect(abs(later - Earth.rotationAngle(unixSeconds: Self.j2000)) < 1e-6)
        // Half a sidereal day: half a turn.
        let half = Earth.rotationAngle(unixSeconds: Self.j2000 + siderealDay / 2) - Earth.rotationAngle(unixSeconds: Self.j2000)
        #expect(abs(abs(half) - .pi) < 1e-6)
    }

    @Test func aSunSynchronousOrbitAt500KilometresDriftsWithTheSun() {
        // Micius: 97.37°, about 500 km.
        let orbit = CircularOrbit(altitudeKm: 500, inclinationDegrees: 97.37, raanDegrees: 0, argumentOfLatitudeDegrees: 0, epoch: Self.j2000)
        let kepler = 2 * Double.pi * (pow(orbit.radiusKm, 3) / Earth.gravitationalParameter).squareRoot()
        #expect(abs(kepler - 5668) < 2)  // 94.5 minutes
        #expect(abs(orbit.periodSeconds / kepler - 1) < 0.003)  // J2 changes it by ~0.1 %
        // 360° per tropical year: 0.9856° a day (within 2 %).
        let perDay = orbit.raanRate * 86_400 * 180 / .pi
        #expect(abs(perDay / 0.9856 - 1) < 0.02, "\(perDay)° a day")
        // The radius is constant along the orbit.
        for k in 0..<20 { #expect(abs(orbit.inertialPosition(at: Self.j2000 + Double(k) * 300).length - orbit.radiusKm) < 1e-6) }
    }

    /// A station on the equator and a polar orbit whose ascending node is over it at the epoch.
    static func overhead(altitudeKm: Double) -> (CircularOrbit, GroundSite) {
        let lon = 30.0
        let raan = lon + Earth.rotationAngle(unixSeconds: j2000) * 180 / .pi
        return (CircularOrbit(altitudeKm: altitudeKm, inclinationDegrees: 90, raanDegrees: raan, argumentOfLatitudeDegrees: 0, epoch: j2000),
                GroundSite(latitudeDegrees: 0, longitudeDegrees: lon, altitudeMetres: 0, minimumElevationDegrees: 10))
    }

    @Test func anOverheadPassCulminatesAtZenithAtTheAltitudeAndLastsWhatItsCentralAngleSays() throws {
        let (orbit, site) = Self.overhead(altitudeKm: 500)
        let passes = PassPredictor.passes(of: orbit, over: site, from: Self.j2000 - 900, to: Self.j2000 + 900)
        let pass = try #require(passes.count == 1 ? passes.first : nil, "\(passes)")
        #expect(pass.maximumElevationDegrees > 89.5)
        #expect(abs(pass.minimumRangeKm - 500) < 0.5)
        #expect(abs(pass.culmination - Self.j2000) < 2)
        // Central angle from the station to where the satellite is at 10°: λ = acos(R cos e / a) − e;
        // the satellite crosses it at √(u̇² + ω_E²) relative to the ground (polar orbit over the equator).
        let r = Earth.radiusKm, a = orbit.radiusKm, e = 10 * Double.pi / 180
        let lambda = acos(r * cos(e) / a) - e
        let expected = 2 * lambda / (orbit.argumentOfLatitudeRate * orbit.argumentOfLatitudeRate + Earth.rotationRate * Earth.rotationRate).squareRoot()
        #expect(abs(pass.durationSeconds / expected - 1) < 0.01, "\(pass.durationSeconds) s vs \(expected) s")
        #expect(pass.durationSeconds > 420 && pass.durationSeconds < 460)  // about 7.3 minutes
        // At the edges the elevation is the minimum.
        for t in [pass.start, pass.end] {
            #expect(abs(site.look(at: orbit.earthFixedPosition(at: t)).elevationDegrees - 10) < 0.01)
        }
    }

    @Test func rangeAndElevationObeyTheLawOfCosinesAllDay() {
        let orbit = CircularOrbit(altitudeKm: 500, inclinationDegrees: 97.37, raanDegrees: 123, argumentOfLatitudeDegrees: 45, epoch: Self.j2000)
        let xinglong = GroundSite(latitudeDegrees: 40.3959, longitudeDegrees: 117.5775, altitudeMetres: 893, minimumElevationDegrees: 10)
        var seen = 0
        for k in 0..<(86_400 / 30) {
            let look = xinglong.look(at: orbit.earthFixedPosition(at: Self.j2000 + Double(k) * 30))
            guard look.elevationDegrees > 0 else { continue }
            seen += 1
            let expected = LookAngles.range(altitudeKm: 500, elevationDegrees: look.elevationDegrees, stationAltitudeKm: 0.893)
            #expect(abs(look.rangeKm - expected) < 1e-6 * expected, "\(look)")
            #expect(abs(LookAngles.elevation(altitudeKm: 500, rangeKm: look.rangeKm, stationAltitudeKm: 0.893) - look.elevationDegrees) < 1e-6)
            #expect(look.azimuthDegrees >= 0 && look.azimuthDegrees < 360)
        }
        #expect(seen > 50)
        // The reference's figures for a 500 km orbit: about 645 km at 50°, 1,200 km at 20°, 1,700 km at 10°.
        #expect(abs(LookAngles.range(altitudeKm: 500, elevationDegrees: 50) - 645) < 10)
        #expect(abs(LookAngles.range(altitudeKm: 500, elevationDegrees: 20) - 1200) < 30)
        #expect(abs(LookAngles.range(altitudeKm: 500, elevationDegrees: 10) - 1700) < 30)
    }

    @Test func passesOverADayAreDisjointOrderedAndAboveTheMinimum() throws {
        let orbit = CircularOrbit(altitudeKm: 500, inclinationDegrees: 97.37, raanDegrees: 200, argumentOfLatitudeDegrees: 10, epoch: Self.j2000)
        let site = GroundSite(latitudeDegrees: 40.3959, longitudeDegrees: 117.5775, altitudeMetres: 893, minimumElevationDegrees: 10)
        let passes = PassPredictor.passes(of: orbit, over: site, from: Self.j2000, to: Self.j2000 + 3 * 86_400)
        // A 97° orbit at 500 km sees a mid-latitude station 2-5 times a day above 10°.
        #expect(passes.count >= 6 && passes.count <= 15, "\(passes.count)")
        for (p, q) in zip(passes, passes.dropFirst()) { #expect(p.end < q.start) }
        for p in passes {
            #expect(p.start < p.culmination && p.culmination < p.end)
            #expect(p.durationSeconds < 8 * 60)
            #expect(p.maximumElevationDegrees >= 10)
            // The culmination is the highest point: sampled every second, nothing is higher.
            var t = p.start
            while t < p.end {
                #expect(site.look(at: orbit.earthFixedPosition(at: t)).elevationDegrees <= p.maximumElevationDegrees + 1e-6)
                t += 1
            }
            #expect(abs(p.minimumRangeKm - LookAngles.range(altitudeKm: 500, elevationDegrees: p.maximumElevationDegrees, stationAltitudeKm: 0.893)) < 0.01)
        }
    }

    /// The Sun against what any almanac says: its declination at the 2024 solstice and
    /// equinox, and its highest elevation of a day at a station, 90° − |φ − δ| (an
    /// independent formula: the meridian altitude).
    @Test func theSunStandsWhereTheAlmanacPutsIt() {
        func declination(_ unix: Double) -> Double { asin(Sun.earthFixedDirection(at: unix).z) * 180 / .pi }
        #expect(abs(declination(1_718_916_660) - 23.44) < 0.05, "June solstice 2024-06-20T20:51Z: \(declination(1_718_916_660))")
        #expect(abs(declination(1_710_903_960)) < 0.05, "March equinox 2024-03-20T03:06Z: \(declination(1_710_903_960))")
        for (lat, lon, day) in [(51.48, 0.0, 1_718_928_000.0), (-33.93, 18.86, 1_705_276_800.0), (36.65, 117.0, 1_705_276_800.0)] {
            let site = GroundSite(latitudeDegrees: lat, longitudeDegrees: lon)
            let samples = stride(from: day, to: day + 86_400, by: 60).map { (t: $0, e: site.sunElevationDegrees(at: $0)) }
            let noon = samples.max { $0.e < $1.e }!, midnight = samples.min { $0.e < $1.e }!
            let delta = declination(noon.t)
            #expect(abs(noon.e - (90 - abs(lat - delta))) < 0.2, "at \(lat), \(lon): \(noon.e)° against \(90 - abs(lat - delta))°")
            #expect(abs(midnight.e - (abs(lat + delta) - 90)) < 0.2, "at \(lat), \(lon): \(midnight.e)° at lower culmination")
            // Noon falls within 20 minutes of the longitude's mean solar noon (equation of time).
            let meanNoon = day + (12 - lon / 15) * 3600
            #expect(abs(noon.t - meanNoon) < 20 * 60, "noon at \(lat), \(lon) is \((noon.t - meanNoon) / 60) min from mean noon")
        }
        // The sky's light adds to the detectors' own clicks per pulse.
        #expect(abs(SkyBackground.yield(darkCountProbability: 0, countsPerSecond: 1e6, sourceRateHz: 1e8) - 0.0199) < 1e-12)
        #expect(SkyBackground.yield(darkCountProbability: 5e-7, countsPerSecond: 0, sourceRateHz: 1e8) == 5e-7)
        let sky = SkyBackground(nightCountsPerSecond: 200, dayCountsPerSecond: 2e4)
        #expect(sky.countsPerSecond(sunElevationDegrees: -6.5) == 200 && sky.countsPerSecond(sunElevationDegrees: -5.5) == 2e4)
    }
}
