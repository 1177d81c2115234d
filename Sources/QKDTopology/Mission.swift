import QKDCore
import QKDPhysics

/// When a satellite network's emulated time runs (`mission:` in the topology): from `start`
/// (Unix seconds, UTC) for `hours`, with the stretches between passes, where nothing is in
/// view, skipped: each takes `gapWallSeconds` of wall time however long it is.
public struct Mission: Hashable, Sendable {
    public var start: Double
    public var hours: Double
    public var gapWallSeconds: Double
    /// The wall instant (the node's monotonic clock, shared by every process of the machine)
    /// at which emulated time is `start`: set by `qkdctl up` for every node of a run, so that
    /// they agree; nil: each node's own start.
    public var origin: Instant?

    public static let defaultHours = 24.0
    public static let defaultGapWallSeconds = 2.0

    public init(start: Double, hours: Double = Mission.defaultHours, gapWallSeconds: Double = Mission.defaultGapWallSeconds,
                origin: Instant? = nil) {
        self.start = start
        self.hours = hours
        self.gapWallSeconds = gapWallSeconds
        self.origin = origin
    }

    public var end: Double { start + hours * 3600 }
}

/// A satellite's pass over a ground station on one free-space link.
public struct LinkPass: Equatable, Sendable {
    public var link: LinkIndex
    public var satellite: NodeID
    public var station: NodeID
    public var pass: SatellitePass

    public init(link: LinkIndex, satellite: NodeID, station: NodeID, pass: SatellitePass) {
        self.link = link
        self.satellite = satellite
        self.station = station
        self.pass = pass
    }
}

/// How emulated time (UTC) follows wall time in a satellite network: at the topology's
/// `time_scale` while any free-space link's satellite is above its station's minimum elevation,
/// and in `gapWallSeconds` of wall time across each stretch between such windows (a stretch
/// shorter than that at the time scale is not sped up). The mapping is continuous and strictly
/// increasing, and every node computes the same one from the topology alone (`PassPredictor`
/// over the mission), so all of a run's processes agree on emulated time without messages.
/// After the mission's end, emulated time runs on at the time scale with no more passes.
public struct MissionTimeline: Sendable {
    public let mission: Mission
    public let timeScale: Double
    /// Every free-space link's passes within the mission, by start.
    public let passes: [LinkPass]
    /// Each segment starts at `wall` seconds after the origin at emulated `utc` and runs at
    /// `rate` emulated seconds per wall second; `inView` when a pass is under way.
    public struct Segment: Equatable, Sendable {
        public var wall: Double
        public var utc: Double
        public var rate: Double
        public var inView: Bool
    }
    public let segments: [Segment]

    public init(topology: Topology, mission: Mission) {
        var passes: [LinkPass] = []
        for link in topology.links {
            guard case .freeSpace = link.medium, let ends = topology.satelliteEnds(of: link) else { continue }
            // A station that works by night only leaves its passes by day out of the mission.
            for p in PassPredictor.passes(of: ends.orbit, over: ends.site, from: mission.start, to: mission.end) where ends.site.uses(p) {
                passes.append(LinkPass(link: link.index, satellite: ends.satellite, station: ends.station, pass: p))
            }
        }
        passes.sort { ($0.pass.start, $0.link.rawValue) < ($1.pass.start, $1.link.rawValue) }
        self.init(mission: mission, timeScale: topology.timeScale, passes: passes)
    }

    public init(mission: Mission, timeScale: Double, passes: [LinkPass]) {
        self.mission = mission
        self.timeScale = timeScale
        self.passes = passes
        // Windows: the union of the passes, merged where they overlap.
        var windows: [(start: Double, end: Double)] = []
        for p in passes.map(\.pass) {
            if let last = windows.last, p.start <= last.end { windows[windows.count - 1].end = max(last.end, p.end) } else {
                windows.append((p.start, p.end))
            }
        }
        var segments: [Segment] = []
        var wall = 0.0, utc = mission.start
        func gap(to until: Double) {
            guard until > utc else { return }
            let length = until - utc
            let rate = max(timeScale, length / mission.gapWallSeconds)
            segments.append(Segment(wall: wall, utc: utc, rate: rate, inView: false))
            wall += length / rate
            utc = until
        }
        for w in windows {
            gap(to: w.start)
            let start = max(w.start, utc)
            guard w.end > start else { continue }
            segments.append(Segment(wall: wall, utc: start, rate: timeScale, inView: true))
            wall += (w.end - start) / timeScale
            utc = w.end
        }
        gap(to: mission.end)
        segments.append(Segment(wall: wall, utc: utc, rate: timeScale, inView: false))
        self.segments = segments
    }

    /// Wall seconds the whole mission takes.
    public var wallSeconds: Double { segments.last!.wall }

    /// Emulated UTC (Unix seconds) `wall` seconds after the origin (the start, before it).
    public func utc(atWall wall: Double) -> Double {
        guard wall > 0 else { return mission.start }
        let s = segment(containingWall: wall)
        return s.utc + (wall - s.wall) * s.rate
    }

    /// Wall seconds after the origin at which emulated time reaches `utc`.
    public func wall(atUTC utc: Double) -> Double {
        guard utc > mission.start else { return 0 }
        var low = 0, high = segments.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if segments[mid].utc <= utc { low = mid } else { high = mid - 1 }
        }
        let s = segments[low]
        return s.wall + (utc - s.utc) / s.rate
    }

    private func segment(containingWall wall: Double) -> Segment {
        var low = 0, high = segments.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if segments[mid].wall <= wall { low = mid } else { high = mid - 1 }
        }
        return segments[low]
    }

    /// The passes of one link, by start.
    public func passes(of link: LinkIndex) -> [SatellitePass] { passes.filter { $0.link == link }.map(\.pass) }
}

/// A `MissionTimeline` pinned to the wall: emulated UTC at a monotonic instant, and back.
public struct MissionClock: Sendable {
    public let timeline: MissionTimeline
    public let origin: Instant

    public init(timeline: MissionTimeline, origin: Instant) {
        self.timeline = timeline
        self.origin = origin
    }

    public func utc(at instant: Instant) -> Double {
        timeline.utc(atWall: instant >= origin ? Double(instant.nanoseconds(since: origin)) / 1e9 : -Double(origin.nanoseconds(since: instant)) / 1e9)
    }

    /// The instant at which emulated time reaches `utc` (the origin for any time before the start).
    public func instant(atUTC utc: Double) -> Instant {
        origin.advanced(byNanoseconds: UInt64((timeline.wall(atUTC: utc) * 1e9).rounded(.up)))
    }
}

extension Topology {
    /// A free-space link's satellite (with its orbit) and ground station (with its site).
    public func satelliteEnds(of link: TopologyLink) -> (satellite: NodeID, orbit: CircularOrbit, station: NodeID, site: GroundSite)? {
        for (s, g) in [(link.a, link.b), (link.b, link.a)] {
            if let orbit = node(s)?.orbit, let site = node(g)?.station { return (s, orbit, g, site) }
        }
        return nil
    }

    /// The network's timeline, when it has free-space links (and so a mission).
    public var missionTimeline: MissionTimeline? { mission.map { MissionTimeline(topology: self, mission: $0) } }
}
