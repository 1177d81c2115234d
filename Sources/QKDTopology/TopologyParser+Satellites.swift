import Foundation
import QKDCore
import QKDPhysics
import Yams

/// Satellites, ground stations and free-space links (docs/topology-format.md, "Satellites").
extension TopologyParser {
    public static let orbitKeys = ["altitude_km", "inclination_deg", "raan_deg", "phase_deg", "epoch"]
    public static let channelKeys = ["loss_table", "receive_aperture_m", "divergence_urad", "pointing_jitter_urad",
                                     "zenith_transmittance", "optical_efficiency", "background_night_cps", "background_day_cps"]
    static let budgetKeys = ["receive_aperture_m", "divergence_urad", "pointing_jitter_urad", "zenith_transmittance", "optical_efficiency"]
    public static let missionKeys = ["start", "hours", "gap_wall_s"]
}

extension ParserContext {
    /// A number in `lower...upper` (or absent and not required: nil).
    mutating func bounded(_ map: Node.Mapping, _ key: String, path: String, owner: Node, required: Bool,
                          _ lower: Double, _ upper: Double, upperInclusive: Bool = true, unit: String = "") -> Double? {
        guard let (value, node) = number(map, key, path: path, required: required, owner: owner) else { return nil }
        guard value >= lower, upperInclusive ? value <= upper : value < upper else {
            fail(.outOfRange, node, join(path, key), "\(value)\(unit) is outside [\(lower), \(upper)\(upperInclusive ? "]" : ")")")
            return nil
        }
        return value
    }

    /// A satellite's `orbit:` mapping: circular, its angles at `epoch` (ISO 8601, UTC).
    mutating func parseOrbit(_ node: Node, path: String) -> CircularOrbit? {
        guard case .mapping(let map) = node else {
            fail(.wrongType, node, path, "orbit must be a mapping with \(TopologyParser.orbitKeys.joined(separator: ", "))")
            return nil
        }
        checkKeys(map, allowed: TopologyParser.orbitKeys, path: path)
        let altitude = bounded(map, "altitude_km", path: path, owner: node, required: true, 160, 40_000, unit: " km")
        let inclination = bounded(map, "inclination_deg", path: path, owner: node, required: true, 0, 180, unit: "°")
        let raan = bounded(map, "raan_deg", path: path, owner: node, required: true, 0, 360, upperInclusive: false, unit: "°")
        let phase = bounded(map, "phase_deg", path: path, owner: node, required: true, 0, 360, upperInclusive: false, unit: "°")
        let epoch = isoTime(map, "epoch", path: path, owner: node, required: true)
        guard let altitude, let inclination, let raan, let phase, let epoch else { return nil }
        return CircularOrbit(altitudeKm: altitude, inclinationDegrees: inclination, raanDegrees: raan, argumentOfLatitudeDegrees: phase, epoch: epoch)
    }

    /// A time given as ISO 8601 UTC.
    mutating func isoTime(_ map: Node.Mapping, _ key: String, path: String, owner: Node, required: Bool) -> Double? {
        guard let (text, at) = string(map, key, path: path, required: required, owner: owner) else { return nil }
        guard let date = ISO8601DateFormatter().date(from: text) else {
            fail(.invalidValue, at, join(path, key), "'\(text)' is not an ISO 8601 UTC time such as 2016-12-18T16:50:00Z")
            return nil
        }
        return date.timeIntervalSince1970
    }

    /// The `mission:` of a network with free-space links: when emulated time starts (default:
    /// the earliest orbit epoch), how many hours of passes it covers, and how many wall seconds
    /// each skipped stretch between passes takes. Without free-space links there is none (a
    /// `mission:` there is refused: nothing would use it).
    mutating func parseMission(_ top: Node.Mapping, root: Node, nodes: [TopologyNode], links: [TopologyLink]) -> Mission? {
        let freeSpace = links.contains(where: \.isFreeSpace)
        guard let value = top["mission"] else {
            guard freeSpace, let start = nodes.compactMap({ $0.orbit?.epoch }).min() else { return nil }
            return Mission(start: start)
        }
        guard freeSpace else {
            fail(.invalidValue, value, "mission", "a mission is for networks with free-space links, and this one has none")
            return nil
        }
        guard case .mapping(let map) = value else {
            fail(.wrongType, value, "mission", "must be a mapping of \(TopologyParser.missionKeys.joined(separator: ", "))")
            return nil
        }
        checkKeys(map, allowed: TopologyParser.missionKeys, path: "mission")
        let start = isoTime(map, "start", path: "mission", owner: value, required: false) ?? nodes.compactMap({ $0.orbit?.epoch }).min()
        let hours = bounded(map, "hours", path: "mission", owner: value, required: false, 0.01, 24 * 31, unit: " h") ?? Mission.defaultHours
        let gap = bounded(map, "gap_wall_s", path: "mission", owner: value, required: false, 0.1, 3600, unit: " s") ?? Mission.defaultGapWallSeconds
        guard let start else { return nil }
        return Mission(start: start, hours: hours, gapWallSeconds: gap)
    }

    /// A free-space link's `channel:`: a measured `loss_table` (CSV beside the topology) or a
    /// link budget (every budget field).
    /// A free-space channel: its loss (a table or a budget) and the sky's light by night and by
    /// day (counts per second per detector, default none).
    mutating func parseChannel(_ node: Node, path: String) -> (FreeSpaceChannel, SkyBackground)? {
        guard case .mapping(let map) = node else {
            fail(.wrongType, node, path, "channel must be a mapping: loss_table, or \(TopologyParser.budgetKeys.joined(separator: ", "))")
            return nil
        }
        checkKeys(map, allowed: TopologyParser.channelKeys, path: path)
        let night = bounded(map, "background_night_cps", path: path, owner: node, required: false, 0, 1e9, unit: " counts/s")
        let day = bounded(map, "background_day_cps", path: path, owner: node, required: false, 0, 1e9, unit: " counts/s")
        let background = SkyBackground(nightCountsPerSecond: night ?? 0, dayCountsPerSecond: day ?? 0)
        guard let loss = parseLoss(map, node: node, path: path) else { return nil }
        if map["background_night_cps"] != nil && night == nil || map["background_day_cps"] != nil && day == nil { return nil }
        return (loss, background)
    }

    /// A channel's loss: its `loss_table`, or its link budget.
    private mutating func parseLoss(_ map: Node.Mapping, node: Node, path: String) -> FreeSpaceChannel? {
        if let (file, at) = string(map, "loss_table", path: path, required: false, owner: node) {
            if let extra = TopologyParser.budgetKeys.first(where: { map[$0] != nil }) {
                fail(.invalidValue, map[extra], join(path, extra), "a channel is a loss_table or a link budget, not both")
                return nil
            }
            guard let readFile else {
                fail(.unreadable, at, join(path, "loss_table"), "'\(file)': a loss table is read beside the topology file; parse it with TopologyParser.load")
                return nil
            }
            let text: String
            switch readFile(file) {
            case .success(let t):
                text = t
                if !filesRead.contains(file) { filesRead.append(file) }
            case .failure(let why):
                fail(.unreadable, at, join(path, "loss_table"), "cannot read '\(file)': \(why.message)")
                return nil
            }
            do throws(LossTable.Problem) {
                return .table(try LossTable(csv: text))
            } catch {
                fail(.invalidValue, at, join(path, "loss_table"), "\(file)\(error.line > 0 ? ":\(error.line)" : ""): \(error.message)")
                return nil
            }
        }
        let aperture = bounded(map, "receive_aperture_m", path: path, owner: node, required: true, 0.001, 100, unit: " m")
        let divergence = bounded(map, "divergence_urad", path: path, owner: node, required: true, 0.01, 10_000, unit: " µrad")
        let jitter = bounded(map, "pointing_jitter_urad", path: path, owner: node, required: true, 0, 10_000, unit: " µrad")
        let zenith = bounded(map, "zenith_transmittance", path: path, owner: node, required: true, 0.001, 1)
        let optics = bounded(map, "optical_efficiency", path: path, owner: node, required: true, 0.0001, 1)
        guard let aperture, let divergence, let jitter, let zenith, let optics else { return nil }
        return .budget(LinkBudget(receiveApertureMetres: aperture, divergenceMicroradians: divergence, pointingJitterMicroradians: jitter,
                                  zenithTransmittance: zenith, opticalEfficiency: optics))
    }
}

/// Why a file a topology names could not be read.
public struct TopologyFileProblem: Error, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}
