import Foundation

/// `network.json` in a run directory: what qkdctl needs to find and describe a network.
public struct NetworkManifest: Codable, Equatable, Sendable {
    public var topology: String
    public var topologySource: String
    public var runDirectory: String
    public var binDirectory: String
    public var startedAt: Double
    /// Arguments every node of this network is started with (also on restart).
    public var nodeArguments: [String]

    public init(topology: String, topologySource: String, runDirectory: String,
                binDirectory: String, startedAt: Double, nodeArguments: [String]) {
        self.topology = topology
        self.topologySource = topologySource
        self.runDirectory = runDirectory
        self.binDirectory = binDirectory
        self.startedAt = startedAt
        self.nodeArguments = nodeArguments
    }

    enum CodingKeys: String, CodingKey {
        case topology
        case topologySource = "topology_source"
        case runDirectory = "run_dir"
        case binDirectory = "bin_dir"
        case startedAt = "started_at"
        case nodeArguments = "node_arguments"
    }

    public static func load(path: String) throws(LaunchError) -> NetworkManifest {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LaunchError(.noNetwork, "no network manifest at '\(path)'")
        }
        do {
            return try JSONDecoder().decode(NetworkManifest.self, from: data)
        } catch {
            throw LaunchError(.io, "\(path): not a valid network manifest: \(error)")
        }
    }

    public func save(path: String) throws(LaunchError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try encoder.encode(self).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw LaunchError(.io, "cannot write '\(path)': \(error.localizedDescription)")
        }
    }
}
