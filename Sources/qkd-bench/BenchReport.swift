import Foundation

/// Summary statistics of one measured quantity.
struct Stats: Codable {
    var count: Int
    var min: Double
    var p50: Double
    var p90: Double
    var p99: Double
    var max: Double
    var mean: Double
}

func stats(_ samples: [Double]) -> Stats {
    let s = samples.sorted()
    guard !s.isEmpty else { return Stats(count: 0, min: .nan, p50: .nan, p90: .nan, p99: .nan, max: .nan, mean: .nan) }
    func q(_ p: Double) -> Double { s[Swift.min(s.count - 1, Int(p * Double(s.count)))] }
    return Stats(count: s.count, min: s[0], p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.count - 1],
                 mean: s.reduce(0, +) / Double(s.count))
}

/// Benchmark results, printed as a table and optionally written as JSON. Numbers are
/// reported, never asserted.
struct BenchReport {
    struct Entry: Codable {
        var name: String
        var unit: String
        var target: String
        var stats: Stats
    }

    var entries: [Entry] = []

    mutating func add(_ name: String, _ stats: Stats, unit: String, target: String) {
        entries.append(Entry(name: name, unit: unit, target: target, stats: stats))
        print(String(format: "%@ n=%-5d p50 %10.3f  p90 %10.3f  p99 %10.3f  min %10.3f  max %10.3f  mean %10.3f %@   [%@]",
                     name.padding(toLength: 34, withPad: " ", startingAt: 0) as NSString, stats.count, stats.p50, stats.p90, stats.p99, stats.min, stats.max, stats.mean,
                     unit as NSString, target as NSString))
        fflush(nil)
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(entries)) ?? Data(), as: UTF8.self)
    }
}

/// A benchmark that could not measure what it set out to, with why.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
