import QKDCore
import QKDPhysics
import QKDTopology
import QKDWire

/// What paces a free-space link's source instead of the wall clock: the mission's emulated
/// time (`MissionClock`), the link's passes, and the geometry that gives each frame its
/// transmittance. A frame covers `frameSeconds` of emulated time within one pass (the last of a
/// pass is shorter), at the channel's transmittance at the frame's middle (range and elevation
/// from the orbit and the station: `FreeSpaceChannel`, docs/physics.md) and with the sky's
/// light at the station by day or by night (`SkyBackground`, the Sun's elevation there);
/// outside passes nothing is emitted. Pure: the engine asks it, with the instant it was given.
public struct FreeSpaceDrive: Sendable {
    public let clock: MissionClock
    public let passes: [SatellitePass]
    public let satellite: NodeID
    public let station: NodeID
    let orbit: CircularOrbit
    let site: GroundSite
    let channel: FreeSpaceChannel
    let background: SkyBackground
    public let frameSeconds: Double

    /// nil when the link is not free-space or its ends are not a satellite and a station.
    public init?(link: TopologyLink, topology: Topology, clock: MissionClock, frameSeconds: Double = 0.1) {
        guard case .freeSpace(let channel) = link.medium, let ends = topology.satelliteEnds(of: link) else { return nil }
        self.clock = clock
        passes = clock.timeline.passes(of: link.index)
        satellite = ends.satellite
        station = ends.station
        orbit = ends.orbit
        site = ends.site
        self.channel = channel
        background = link.background
        self.frameSeconds = frameSeconds
    }

    /// One frame's stretch of emulated time and where the satellite is in its middle.
    public struct Frame: Equatable, Sendable {
        public var start: Double
        public var seconds: Double
        public var rangeKm: Double
        public var elevationDegrees: Double
        /// The channel's transmittance (detector efficiency excluded).
        public var transmittance: Double
        /// The pass's last frame: it closes the block (one pass, one block).
        public var endsPass: Bool
        /// The sky's light at the station's detectors (counts per second per detector).
        public var backgroundCountsPerSecond: Double
    }

    /// The frame that starts at `cursor` (emulated UTC), or at the next pass's start if
    /// `cursor` falls between passes; nil when that frame is not over by `now` (or no pass is
    /// left).
    public func frame(from cursor: Double, now: Double) -> Frame? {
        guard let (start, end, passEnd) = bounds(from: cursor), end <= now else { return nil }
        let middle = (start + end) / 2
        let look = site.look(at: orbit.earthFixedPosition(at: middle))
        return Frame(start: start, seconds: end - start, rangeKm: look.rangeKm, elevationDegrees: look.elevationDegrees,
                     transmittance: channel.transmittance(rangeKm: look.rangeKm, elevationDegrees: look.elevationDegrees),
                     endsPass: end >= passEnd,
                     backgroundCountsPerSecond: background.countsPerSecond(sunElevationDegrees: site.sunElevationDegrees(at: middle)))
    }

    /// When the next frame after `cursor` is over (emulated UTC), or nil when no pass is left.
    public func nextFrameEnd(after cursor: Double) -> Double? { bounds(from: cursor)?.end }

    /// The next frame's start and end, and its pass's end. Frames are laid from the pass's
    /// start, so a pass always splits the same way; Unix seconds carry about 0.2 µs of rounding,
    /// so a cursor within 10 µs of a frame's boundary is at that boundary.
    private func bounds(from cursor: Double) -> (start: Double, end: Double, passEnd: Double)? {
        let tolerance = 1e-5
        guard let pass = passes.first(where: { $0.end - tolerance > cursor }) else { return nil }
        let start = max(cursor, pass.start)
        let k = ((start - pass.start + tolerance) / frameSeconds).rounded(.down)
        let end = min(pass.start + (k + 1) * frameSeconds, pass.end)
        return (max(start, pass.start + k * frameSeconds), end, pass.end)
    }

    public func report(at utc: Double) -> FreeSpaceReport {
        let look = site.look(at: orbit.earthFixedPosition(at: utc))
        let current = passes.first { $0.start <= utc && utc < $0.end }
        let next = passes.first { $0.start > utc }
        return FreeSpaceReport(satellite: satellite.rawValue, station: station.rawValue, emulatedUTC: utc, inView: current != nil,
                               elevationDegrees: look.elevationDegrees, rangeKm: look.rangeKm,
                               lossDb: current == nil ? nil : channel.lossDb(rangeKm: look.rangeKm, elevationDegrees: look.elevationDegrees),
                               passesCompleted: passes.count { $0.end <= utc }, passesTotal: passes.count,
                               nextPassStart: next?.start, nextPassEnd: next?.end, sunElevationDegrees: site.sunElevationDegrees(at: utc))
    }
}
