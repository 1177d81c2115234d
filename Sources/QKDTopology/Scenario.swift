import Foundation
import QKDCore
import Yams

/// A scenario: a timeline of attacks and faults on a network, with relays requested throughout
/// (`qkdctl scenario run FILE`; format: docs/topology-format.md, "Scenario files").
public struct Scenario: Sendable, Equatable {
    /// Relays from one node to another, one every `everySeconds`.
    public struct RelayStream: Sendable, Equatable {
        public var from: NodeID
        public var to: NodeID
        public var everySeconds: Double
        public var bits: Int

        public init(from: NodeID, to: NodeID, everySeconds: Double, bits: Int) {
            self.from = from
            self.to = to
            self.everySeconds = everySeconds
            self.bits = bits
        }
    }

    public enum Action: Sendable, Equatable {
        case eve(link: String, attack: String, fraction: Double, atKm: Double?)
        case eveRemove(link: String)
        case cut(link: String)
        case loss(link: String, db: Double)
        case delay(link: String, ms: Double)
        case partition(nodes: [NodeID])
        case kill(node: NodeID)
        case restart(node: NodeID)
        /// One link's faults, or (nil) every fault, every eavesdropper, every dead node.
        case heal(link: String?)
    }

    public struct Event: Sendable, Equatable {
        public var atSeconds: Double
        public var action: Action
    }

    public var name: String
    public var description: String
    /// The topology file, resolved against the scenario file's directory.
    public var topologyPath: String
    public var durationSeconds: Double
    public var sampleEverySeconds: Double
    /// Emulated seconds per wall second for this run, instead of the topology's `time_scale`
    /// (a large mesh on few cores runs its quantum layer slower than real time).
    public var timeScale: Double?
    public var relays: [RelayStream]
    /// In time order.
    public var events: [Event]
}

/// Parses scenario YAML, checking every node and link it names against its topology; each
/// problem names the file, line and field (as `TopologyParser` does).
public enum ScenarioParser {
    public static let topLevelKeys = ["name", "description", "topology", "duration_s", "sample_every_s", "time_scale", "relays", "events"]
    public static let relayKeys = ["from", "to", "every_s", "bits"]
    public static let eventKeys = ["at_s", "action", "link", "attack", "fraction", "at_km", "db", "ms", "nodes", "node"]
    public static let actions = ["eve", "eve-remove", "cut", "loss", "delay", "partition", "kill", "restart", "heal"]

    /// Reads `path` and its topology; `attacks` are the eavesdropper attacks that exist.
    public static func load(path: String, attacks: [String]) throws(TopologyValidationError) -> (Scenario, Topology) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TopologyValidationError(errors: [TopologyError(code: .unreadable, file: path, line: nil, column: nil, field: "",
                                                                 message: "cannot read file: \(error.localizedDescription)")])
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text, file: path, directory: directory, attacks: attacks) { topologyPath throws(TopologyValidationError) in
            try TopologyParser.load(path: topologyPath)
        }
    }

    /// Parses `text`; `loadTopology` reads the topology it names (resolved against `directory`).
    public static func parse(_ text: String, file: String, directory: String, attacks: [String],
                             loadTopology: (String) throws(TopologyValidationError) -> Topology)
        throws(TopologyValidationError) -> (Scenario, Topology)
    {
        var c = ParserContext(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw TopologyValidationError(errors: [c.syntaxError(error)])
        }
        guard let root, case .mapping(let top) = root else {
            c.fail(.wrongType, root, "", "a scenario must be a mapping with 'topology', 'duration_s' and 'events'")
            throw TopologyValidationError(errors: c.errors)
        }
        c.checkKeys(top, allowed: topLevelKeys, path: "")
        let name = c.string(top, "name", path: "", required: true, owner: root)?.0 ?? ""
        let description = c.string(top, "description", path: "", required: false, owner: root)?.0 ?? ""
        guard let (topologyName, topologyNode) = c.string(top, "topology", path: "", required: true, owner: root) else {
            throw TopologyValidationError(errors: c.errors)
        }
        let topologyPath = topologyName.hasPrefix("/") ? topologyName
            : URL(fileURLWithPath: directory).appendingPathComponent(topologyName).standardizedFileURL.path
        let topology: Topology
        do {
            topology = try loadTopology(topologyPath)
        } catch {
            c.fail(.invalidValue, topologyNode, "topology", "topology '\(topologyPath)' cannot be used: \(error.errors.first?.description ?? "")")
            throw TopologyValidationError(errors: c.errors)
        }
        let duration = c.positive(top, "duration_s", path: "", owner: root, required: true) ?? 60
        let sample = c.positive(top, "sample_every_s", path: "", owner: root, required: false) ?? 2
        let timeScale = c.positive(top, "time_scale", path: "", owner: root, required: false)
        if let timeScale, let problem = Topology.timeScaleProblem(timeScale) {
            c.fail(.outOfRange, top["time_scale"], "time_scale", problem)
        }
        var relays: [Scenario.RelayStream] = []
        for (i, item) in c.items(top, "relays", owner: root).enumerated() {
            let path = "relays[\(i)]"
            guard case .mapping(let m) = item else { c.fail(.wrongType, item, path, "must be a mapping"); continue }
            c.checkKeys(m, allowed: relayKeys, path: path)
            let from = c.node(m, "from", path: path, owner: item, topology: topology)
            let to = c.node(m, "to", path: path, owner: item, topology: topology)
            let every = c.positive(m, "every_s", path: path, owner: item, required: false) ?? 2
            let bits = c.number(m, "bits", path: path, required: false, owner: item).map { Int($0.0) } ?? 256
            if bits < 8 || bits % 8 != 0 || bits > 1 << 20 { c.fail(.outOfRange, m["bits"], "\(path).bits", "must be a multiple of 8 in 8...1048576") }
            if let from, let to {
                if from == to { c.fail(.invalidValue, item, path, "from and to are the same node") }
                relays.append(.init(from: from, to: to, everySeconds: every, bits: bits))
            }
        }
        var events: [Scenario.Event] = []
        for (i, item) in c.items(top, "events", owner: root).enumerated() {
            let path = "events[\(i)]"
            guard case .mapping(let m) = item else { c.fail(.wrongType, item, path, "must be a mapping"); continue }
            c.checkKeys(m, allowed: eventKeys, path: path)
            guard let at = c.number(m, "at_s", path: path, required: true, owner: item)?.0,
                  let (action, actionNode) = c.string(m, "action", path: path, required: true, owner: item) else { continue }
            if at < 0 || at > duration { c.fail(.outOfRange, m["at_s"], "\(path).at_s", "must be within 0...\(duration) (duration_s)") }
            func link(required: Bool = true) -> String? {
                guard let (name, node) = c.string(m, "link", path: path, required: required, owner: item) else { return nil }
                guard topology.link(named: name) != nil else {
                    c.fail(.unknownNode, node, "\(path).link", "no link '\(name)' in topology '\(topology.name)'")
                    return nil
                }
                return name
            }
            let parsed: Scenario.Action?
            switch action {
            case "eve":
                let attack = c.string(m, "attack", path: path, required: true, owner: item)
                if let (a, node) = attack, !attacks.contains(a) {
                    c.fail(.invalidValue, node, "\(path).attack", "unknown attack '\(a)' (one of \(attacks.joined(separator: ", ")))")
                }
                let fraction = c.number(m, "fraction", path: path, required: false, owner: item)?.0 ?? 1
                if !(0...1).contains(fraction) { c.fail(.outOfRange, m["fraction"], "\(path).fraction", "must be within 0...1") }
                let atKm = c.number(m, "at_km", path: path, required: false, owner: item)?.0
                parsed = link().flatMap { l in attack.map { .eve(link: l, attack: $0.0, fraction: fraction, atKm: atKm) } }
            case "eve-remove": parsed = link().map { .eveRemove(link: $0) }
            case "cut": parsed = link().map { .cut(link: $0) }
            case "loss":
                let db = c.positive(m, "db", path: path, owner: item, required: true)
                parsed = link().flatMap { l in db.map { .loss(link: l, db: $0) } }
            case "delay":
                let ms = c.positive(m, "ms", path: path, owner: item, required: true)
                parsed = link().flatMap { l in ms.map { .delay(link: l, ms: $0) } }
            case "partition":
                var nodes: [NodeID] = []
                for (j, n) in c.items(m, "nodes", owner: item).enumerated() {
                    guard case .scalar(let s) = n, topology.node(NodeID(s.string)) != nil else {
                        c.fail(.unknownNode, n, "\(path).nodes[\(j)]", "no node '\(n.string ?? "?")' in topology '\(topology.name)'")
                        continue
                    }
                    nodes.append(NodeID(s.string))
                }
                if nodes.isEmpty { c.fail(.missingField, item, "\(path).nodes", "partition needs the nodes of one side") }
                parsed = .partition(nodes: nodes)
            case "kill": parsed = c.node(m, "node", path: path, owner: item, topology: topology).map { .kill(node: $0) }
            case "restart": parsed = c.node(m, "node", path: path, owner: item, topology: topology).map { .restart(node: $0) }
            case "heal": parsed = m["link"] == nil ? .heal(link: nil) : link().map { .heal(link: $0) }
            default:
                c.fail(.invalidValue, actionNode, "\(path).action", "unknown action '\(action)' (one of \(actions.joined(separator: ", ")))")
                parsed = nil
            }
            if let parsed { events.append(.init(atSeconds: at, action: parsed)) }
        }
        guard c.errors.isEmpty else { throw TopologyValidationError(errors: c.errors) }
        let scenario = Scenario(name: name, description: description, topologyPath: topologyPath, durationSeconds: duration,
                                sampleEverySeconds: sample, timeScale: timeScale, relays: relays,
                                events: events.enumerated().sorted { ($0.element.atSeconds, $0.offset) < ($1.element.atSeconds, $1.offset) }.map(\.element))
        return (scenario, topology)
    }
}

extension ParserContext {
    /// A number that must be above zero.
    mutating func positive(_ m: Node.Mapping, _ key: String, path: String, owner: Node, required: Bool) -> Double? {
        guard let (value, node) = number(m, key, path: path, required: required, owner: owner) else { return nil }
        guard value > 0 else {
            fail(.outOfRange, node, join(path, key), "must be above 0")
            return nil
        }
        return value
    }

    /// The items of a sequence field (none if absent or not a sequence, which is reported).
    mutating func items(_ m: Node.Mapping, _ key: String, owner: Node) -> [Node] {
        guard let value = m[key] else { return [] }
        guard case .sequence(let s) = value else {
            fail(.wrongType, value, key, "must be a list")
            return []
        }
        return Array(s)
    }

    /// A node of `topology` named by field `key`.
    mutating func node(_ m: Node.Mapping, _ key: String, path: String, owner: Node, topology: Topology) -> NodeID? {
        guard let (name, node) = string(m, key, path: path, required: true, owner: owner) else { return nil }
        guard topology.node(NodeID(name)) != nil else {
            fail(.unknownNode, node, join(path, key), "no node '\(name)' in topology '\(topology.name)'")
            return nil
        }
        return NodeID(name)
    }
}
