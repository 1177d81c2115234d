import Foundation

/// `make bench`: every benchmark, numbers printed (and written to .run/bench.json).
@main
struct QKDBench {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        if args.first == "--kme-flood" {
            do { try KMEBenchmarks.flood(Array(args.dropFirst())) } catch {
                FileHandle.standardError.write(Data("qkd-bench --kme-flood: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let binDirectory = URL(fileURLWithPath: exe).deletingLastPathComponent().path
        let topologies = args.first { !$0.hasPrefix("-") } ?? "Topologies"
        var report = BenchReport()
        print("QKDNet benchmarks (\(ProcessInfo.processInfo.activeProcessorCount) cores); binaries: \(binDirectory)")
        do {
            let only = args.first { $0.hasPrefix("--only=") }.map { String($0.dropFirst(7)) }
            if only == nil || only == "spine" { try SpineBenchmarks.run(&report, topologies: topologies, binDirectory: binDirectory) }
            if only == nil || only == "postprocessing" { try PostProcessingBenchmarks.run(&report) }
            if only == nil || only == "hybrid" { try HybridBenchmarks.run(&report) }
            if only == nil || only == "relay" { try RelayBenchmarks.run(&report, topologies: topologies, binDirectory: binDirectory) }
            if only == nil || only == "pool" { try PoolBenchmarks.run(&report, topologies: topologies, binDirectory: binDirectory) }
            if only == nil || only == "kme" { try KMEBenchmarks.run(&report, topologies: topologies, binDirectory: binDirectory) }
            if only == nil || only == "quantum" { try QuantumBenchmarks.run(&report, topologies: topologies, binDirectory: binDirectory) }
        } catch {
            FileHandle.standardError.write(Data("qkd-bench: \(error)\n".utf8))
            exit(1)
        }
        try? FileManager.default.createDirectory(atPath: ".run", withIntermediateDirectories: true)
        try? report.json().write(toFile: ".run/bench.json", atomically: true, encoding: .utf8)
        print("written: .run/bench.json")
    }
}
