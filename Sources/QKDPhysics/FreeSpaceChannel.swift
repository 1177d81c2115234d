#if canImport(Glibc)
import Glibc
#endif

/// The loss of a satellite-to-ground optical channel (detector efficiency excluded: it is the
/// link's `detector_efficiency`, as on fibre), from a link budget or a measured table.
public enum FreeSpaceChannel: Hashable, Sendable {
    case budget(LinkBudget)
    case table(LossTable)

    /// Loss in dB at `rangeKm`, seen at `elevationDegrees`.
    public func lossDb(rangeKm: Double, elevationDegrees: Double) -> Double {
        switch self {
        case .budget(let b): b.lossDb(rangeKm: rangeKm, elevationDegrees: elevationDegrees)
        case .table(let t): t.lossDb(rangeKm: rangeKm)
        }
    }

    /// The channel's transmittance (10^(−loss/10)).
    public func transmittance(rangeKm: Double, elevationDegrees: Double) -> Double {
        pow(10, -lossDb(rangeKm: rangeKm, elevationDegrees: elevationDegrees) / 10)
    }
}

/// A downlink's budget, η = η_geo · η_point · η_atm · η_opt:
/// - geometric: a beam of full divergence θ at range L fills a disc of diameter θL, of which a
///   receiver of diameter D_R collects η_geo = min(1, (D_R / (θ L))²) (Bourgoin et al., New J.
///   Phys. 15, 023006 (2013), the far-field approximation θL ≫ D_R);
/// - pointing: a Gaussian beam (1/e² radius w = θL/2) pointed with an rms error σ per axis
///   delivers on average w² / (w² + 4σ²L²) = 1 / (1 + 16 σ²/θ²) of what it would on axis (Farid
///   and Hranilovic, J. Lightwave Technol. 25, 1702 (2007): Rayleigh-distributed offset);
/// - atmosphere: T_zenith^(1 / sin e), the air mass of a plane-parallel atmosphere at
///   elevation e (fair above 10°);
/// - receiver optics η_opt (telescope, polarisation analysis, coupling).
public struct LinkBudget: Hashable, Sendable {
    public var receiveApertureMetres: Double
    /// Full divergence of the beam leaving the satellite (µrad).
    public var divergenceMicroradians: Double
    /// rms pointing error per axis (µrad).
    public var pointingJitterMicroradians: Double
    public var zenithTransmittance: Double
    public var opticalEfficiency: Double

    public init(receiveApertureMetres: Double, divergenceMicroradians: Double, pointingJitterMicroradians: Double,
                zenithTransmittance: Double, opticalEfficiency: Double) {
        self.receiveApertureMetres = receiveApertureMetres
        self.divergenceMicroradians = divergenceMicroradians
        self.pointingJitterMicroradians = pointingJitterMicroradians
        self.zenithTransmittance = zenithTransmittance
        self.opticalEfficiency = opticalEfficiency
    }

    public func lossDb(rangeKm: Double, elevationDegrees: Double) -> Double {
        let theta = divergenceMicroradians * 1e-6, sigma = pointingJitterMicroradians * 1e-6
        let geometric = min(1, pow(receiveApertureMetres / (theta * rangeKm * 1000), 2))
        let pointing = 1 / (1 + 16 * sigma * sigma / (theta * theta))
        let atmosphere = pow(zenithTransmittance, 1 / sin(max(elevationDegrees, 1) * .pi / 180))
        return -10 * log10(geometric * pointing * atmosphere * opticalEfficiency)
    }
}

/// A measured loss against range (a CSV of `range_km,loss_db` beside the topology), linear
/// between its points. Beyond its ends the loss follows the geometric law from the nearest end,
/// 20 log10(L / L_end) dB (the far-field spreading that dominates the range dependence).
public struct LossTable: Hashable, Sendable {
    /// Ascending in range, at least two.
    public let points: [(rangeKm: Double, lossDb: Double)]

    public struct Problem: Error, Equatable, Sendable {
        /// 1-based line of the CSV (0: the table as a whole).
        public var line: Int
        public var message: String

        public init(line: Int, message: String) {
            self.line = line
            self.message = message
        }
    }

    /// `lines`: each point's line in the file it came from (for errors; nil: its index + 2).
    public init(points: [(rangeKm: Double, lossDb: Double)], lines: [Int]? = nil) throws(Problem) {
        guard points.count >= 2 else { throw Problem(line: 0, message: "a loss table needs at least two points, has \(points.count)") }
        for (i, p) in points.enumerated() {
            let line = lines?[i] ?? i + 2
            guard p.rangeKm.isFinite, p.rangeKm > 0, p.lossDb.isFinite, p.lossDb >= 0 else {
                throw Problem(line: line, message: "range_km must be > 0 and loss_db ≥ 0, got \(p.rangeKm), \(p.lossDb)")
            }
            if i > 0, p.rangeKm <= points[i - 1].rangeKm {
                throw Problem(line: line, message: "range_km must increase: \(p.rangeKm) after \(points[i - 1].rangeKm)")
            }
        }
        self.points = points
    }

    /// Parses `range_km,loss_db` with that header line.
    public init(csv text: String) throws(Problem) {
        let rows = try numberPairs(csv: text, header: "range_km,loss_db")
        try self.init(points: rows.map { ($0.a, $0.b) }, lines: rows.map(\.line))
    }

    public func lossDb(rangeKm: Double) -> Double {
        let first = points[0], last = points[points.count - 1]
        if rangeKm <= first.rangeKm { return first.lossDb + 20 * log10(rangeKm / first.rangeKm) }
        if rangeKm >= last.rangeKm { return last.lossDb + 20 * log10(rangeKm / last.rangeKm) }
        return linear(points.map { ($0.rangeKm, $0.lossDb) }, at: rangeKm)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(points.count)
        for p in points { hasher.combine(p.rangeKm); hasher.combine(p.lossDb) }
    }

    public static func == (a: LossTable, b: LossTable) -> Bool {
        a.points.count == b.points.count && zip(a.points, b.points).allSatisfy { $0.rangeKm == $1.rangeKm && $0.lossDb == $1.lossDb }
    }
}

/// y at x on the polyline through `points` (ascending in x, at least two), held flat beyond
/// its ends.
func linear(_ points: [(x: Double, y: Double)], at x: Double) -> Double {
    if x <= points[0].x { return points[0].y }
    if x >= points[points.count - 1].x { return points[points.count - 1].y }
    var (lo, hi) = (0, points.count - 1)
    while hi - lo > 1 {
        let mid = (lo + hi) / 2
        if points[mid].x <= x { lo = mid } else { hi = mid }
    }
    let a = points[lo], b = points[hi]
    return a.y + (b.y - a.y) * (x - a.x) / (b.x - a.x)
}

/// A measured pass: range against time from its start (a CSV of `time_s,range_km`, such as
/// Topologies/micius2017/track.csv), linear between points.
public struct RangeTrack: Sendable {
    public let points: [(t: Double, rangeKm: Double)]

    /// Parses `time_s,range_km` with that header; errors carry the 1-based line.
    public init(csv text: String) throws(LossTable.Problem) {
        var points: [(t: Double, rangeKm: Double)] = []
        for row in try numberPairs(csv: text, header: "time_s,range_km") {
            guard row.a >= 0, row.b > 0, row.a.isFinite, row.b.isFinite else {
                throw .init(line: row.line, message: "expected time ≥ 0 and range > 0, got \(row.a), \(row.b)")
            }
            if let last = points.last, row.a <= last.t { throw .init(line: row.line, message: "time_s must increase: \(row.a) after \(last.t)") }
            points.append((row.a, row.b))
        }
        guard points.count >= 2 else { throw .init(line: 0, message: "a track needs at least two points, has \(points.count)") }
        self.points = points
    }

    public var durationSeconds: Double { points[points.count - 1].t }

    public func rangeKm(at t: Double) -> Double { linear(points.map { ($0.t, $0.rangeKm) }, at: t) }
}

/// The rows of a two-column CSV of numbers under `header`, each with its 1-based line (blank
/// lines skipped, whitespace and CRLF ignored).
func numberPairs(csv text: String, header: String) throws(LossTable.Problem) -> [(a: Double, b: Double, line: Int)] {
    var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { String($0.filter { !$0.isWhitespace }) }
    guard lines.first == header else {
        throw .init(line: 1, message: "the header must be '\(header)', got '\(lines.first?.prefix(60) ?? "")'")
    }
    lines.removeFirst()
    var rows: [(a: Double, b: Double, line: Int)] = []
    for (i, line) in lines.enumerated() where !line.isEmpty {
        let fields = line.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count == 2, let a = Double(fields[0]), let b = Double(fields[1]) else {
            throw .init(line: i + 2, message: "expected two numbers '\(header)', got '\(line.prefix(60))'")
        }
        rows.append((a, b, i + 2))
    }
    return rows
}
