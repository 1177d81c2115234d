import Foundation
import QKDCore
import QKDPhysics
import Yams

/// Parses and validates topology YAML (format: docs/topology-format.md). It collects every
/// problem it can find rather than stopping at the first, and each names the file, the line
/// and the field. Parsing is pure: `parse(_:file:)` reads no files; `load(path:)` reads one.
public enum TopologyParser {
    public static let topLevelKeys = ["name", "description", "seed", "secrecy", "time_scale", "defaults",
                                      "nodes", "links", "saes", "kme", "mission", "key_stocks", "key_policies"]
    public static let nodeKeys = ["id", "lat", "lon", "role", "endpoint", "orbit", "altitude_m", "min_elevation_deg", "night_only"]
    public static let linkKeys = ["a", "b", "length_km", "physics", "type", "channel"]
    public static let saeKeys = ["id", "node", "key_policy"]
    public static let kmeKeys = ["key_retention_s", "max_waiting_bits_per_pair", "max_requests_per_sae", "max_requests"]

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(TopologyValidationError) -> Topology {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw TopologyValidationError(errors: [TopologyError(
                code: .unreadable, file: path, line: nil, column: nil, field: "",
                message: "cannot read file: \(error.localizedDescription)")])
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try parse(text, file: path) { name in
            let url = name.hasPrefix("/") ? URL(fileURLWithPath: name) : directory.appendingPathComponent(name)
            do { return .success(try String(contentsOf: url, encoding: .utf8)) } catch {
                return .failure(TopologyFileProblem(error.localizedDescription))
            }
        }
    }

    /// Parses `text`; `file` is used only in error messages. `readFile` reads a file the topology
    /// names (a free-space link's loss table), relative to the topology's directory (nil: none
    /// may be named).
    public static func parse(_ text: String, file: String,
                             readFile: ((String) -> Result<String, TopologyFileProblem>)? = nil) throws(TopologyValidationError)
        -> Topology
    {
        var context = ParserContext(file: file)
        context.readFile = readFile
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw TopologyValidationError(errors: [context.syntaxError(error)])
        }
        guard let root, case .mapping(let top) = root else {
            context.fail(.wrongType, root, "", "the document must be a mapping with 'nodes' and 'links'")
            throw TopologyValidationError(errors: context.errors)
        }
        let topology = context.topology(from: top, node: root)
        if var topology, context.errors.isEmpty {
            topology.dataFiles = context.filesRead
            return topology
        }
        throw TopologyValidationError(errors: context.errors)
    }
}

/// The parser's working state: the file name and the problems found so far.
/// Shared by the topology and scenario parsers.
struct ParserContext {
    let file: String
    var errors: [TopologyError] = []
    var readFile: ((String) -> Result<String, TopologyFileProblem>)?
    /// The files `readFile` read, as the topology names them.
    var filesRead: [String] = []

    init(file: String) { self.file = file }

    mutating func fail(_ code: TopologyError.Code, _ node: Node?, _ field: String,
                       _ message: String) {
        errors.append(TopologyError(code: code, file: file, line: node?.mark?.line,
                                    column: node?.mark?.column, field: field, message: message))
    }

    func syntaxError(_ error: any Error) -> TopologyError {
        var line: Int?
        var column: Int?
        var problem = "\(error)"
        if let yamlError = error as? YamlError {
            switch yamlError {
            case .scanner(_, let p, let mark, _), .parser(_, let p, let mark, _),
                 .composer(_, let p, let mark, _):
                line = mark.line
                column = mark.column
                problem = p
            case .duplicatedKeysInMapping(let duplicates, _):
                problem = "duplicate key(s) \(duplicates.joined(separator: ", "))"
            default:
                break
            }
        }
        return TopologyError(code: .syntax, file: file, line: line, column: column, field: "",
                             message: "YAML syntax error: \(problem)")
    }

    // MARK: Typed field access

    /// Reports keys of `mapping` not in `allowed`, suggesting the closest allowed key.
    mutating func checkKeys(_ mapping: Node.Mapping, allowed: [String], path: String) {
        for (key, _) in mapping {
            guard let name = key.string else {
                fail(.wrongType, key, path, "keys must be strings")
                continue
            }
            if !allowed.contains(name) {
                let field = path.isEmpty ? name : "\(path).\(name)"
                var message = "unknown field '\(name)'"
                if let guess = closest(to: name, in: allowed) { message += " (did you mean '\(guess)'?)" }
                fail(.unknownField, key, field, message)
            }
        }
    }

    mutating func string(_ mapping: Node.Mapping, _ key: String, path: String,
                         required: Bool, owner: Node) -> (String, Node)? {
        guard let value = mapping[key] else {
            if required { fail(.missingField, owner, join(path, key), "missing required field '\(key)'") }
            return nil
        }
        guard case .scalar(let scalar) = value else {
            fail(.wrongType, value, join(path, key), "must be a string")
            return nil
        }
        return (scalar.string, value)
    }

    mutating func number(_ mapping: Node.Mapping, _ key: String, path: String, required: Bool,
                         owner: Node) -> (Double, Node)? {
        guard let value = mapping[key] else {
            if required { fail(.missingField, owner, join(path, key), "missing required field '\(key)'") }
            return nil
        }
        guard case .scalar = value, let number = value.float ?? value.int.map(Double.init) else {
            fail(.wrongType, value, join(path, key), "must be a number, got '\(value.string ?? "a collection")'")
            return nil
        }
        guard number.isFinite else {
            fail(.invalidValue, value, join(path, key), "must be a finite number")
            return nil
        }
        return (number, value)
    }

    mutating func sequence(_ mapping: Node.Mapping, _ key: String, required: Bool,
                           owner: Node) -> [Node]? {
        guard let value = mapping[key] else {
            if required { fail(.missingField, owner, key, "missing required field '\(key)'") }
            return nil
        }
        guard case .sequence(let items) = value else {
            fail(.wrongType, value, key, "must be a list")
            return nil
        }
        return Array(items)
    }

    // MARK: Sections

    /// The items of a list section that are mappings, with their path; reports the others and
    /// every unknown key.
    mutating func entries(_ items: [Node], section: String, keys: [String], shape: String)
        -> [(index: Int, path: String, map: Node.Mapping, node: Node)]
    {
        var out: [(Int, String, Node.Mapping, Node)] = []
        for (i, item) in items.enumerated() {
            let path = "\(section)[\(i)]"
            guard case .mapping(let map) = item else {
                fail(.wrongType, item, path, "each \(shape)")
                continue
            }
            checkKeys(map, allowed: keys, path: path)
            out.append((i, path, map, item))
        }
        return out
    }

    mutating func topology(from top: Node.Mapping, node root: Node) -> Topology? {
        checkKeys(top, allowed: TopologyParser.topLevelKeys, path: "")

        var name = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        if let (value, node) = string(top, "name", path: "", required: false, owner: root) {
            if isValidIdentifier(value) { name = value } else {
                fail(.invalidValue, node, "name", "'\(value)' must be 1-64 letters, digits, '.', '_' or '-'")
            }
        }

        var seed: UInt64 = 0
        if let value = top["seed"] {
            if let parsed = value.string.flatMap({ UInt64($0) }) { seed = parsed } else {
                fail(.invalidValue, value, "seed", "must be an integer in [0, 2^64 - 1], got '\(value.string ?? "a collection")'")
            }
        }

        var secrecy = Secrecy.secret
        if let (value, node) = string(top, "secrecy", path: "", required: false, owner: root) {
            if let parsed = Secrecy(rawValue: value) { secrecy = parsed } else {
                fail(.invalidValue, node, "secrecy", "must be 'secret' or 'reproducible', got '\(value)'")
            }
        }

        var timeScale = 1.0
        if let (value, node) = number(top, "time_scale", path: "", required: false, owner: root) {
            if let problem = Topology.timeScaleProblem(value) { fail(.outOfRange, node, "time_scale", problem) } else {
                timeScale = value
            }
        }

        var defaults = PhysicsParameters()
        if let value = top["defaults"] {
            defaults = physics(value, base: PhysicsParameters(), path: "defaults")
        }

        let nodes = parseNodes(top, root: root)
        let known = Set(nodes.map(\.id))
        let roles = Dictionary(nodes.map { ($0.id, $0.role) }, uniquingKeysWith: { a, _ in a })
        let links = parseLinks(top, root: root, known: known, roles: roles, defaults: defaults)
        let saes = parseSAEs(top, known: known)
        let kme = parseKME(top)
        let mission = parseMission(top, root: root, nodes: nodes, links: links)
        var topology = Topology(name: name, seed: seed, secrecy: secrecy, timeScale: timeScale, defaults: defaults,
                                nodes: nodes, links: links, saes: saes, kme: kme, mission: mission)
        topology.keyStocks = parseKeyStocks(top, saes: saes, kme: kme)
        topology.keyPolicies = parseKeyPolicies(top, saes: saes)
        return topology
    }

    mutating func parseNodes(_ top: Node.Mapping, root: Node) -> [TopologyNode] {
        guard let items = sequence(top, "nodes", required: true, owner: root) else { return [] }
        if items.isEmpty { fail(.invalidValue, top["nodes"], "nodes", "must list at least one node") }
        var nodes: [TopologyNode] = []
        var firstSeen: [NodeID: Int] = [:]
        var endpoints: [Endpoint: String] = [:]
        for (i, path, map, item) in entries(items, section: "nodes", keys: TopologyParser.nodeKeys,
                                            shape: "node must be a mapping with id, lat, lon, role") {
            let id = string(map, "id", path: path, required: true, owner: item)
            let role = string(map, "role", path: path, required: true, owner: item)
            let satellite = role?.0 == NodeRole.satellite.rawValue
            let lat = satellite ? (0, item) : number(map, "lat", path: path, required: true, owner: item)
            let lon = satellite ? (0, item) : number(map, "lon", path: path, required: true, owner: item)
            var ok = id != nil && lat != nil && lon != nil && role != nil
            if let (value, node) = id, !isValidIdentifier(value) {
                fail(.invalidValue, node, "\(path).id", "'\(value)' must be 1-64 letters, digits, '.', '_' or '-'")
                ok = false
            }
            if let (value, node) = lat, !(-90...90).contains(value) {
                fail(.outOfRange, node, "\(path).lat", "latitude \(value) is outside [-90, 90]")
                ok = false
            }
            if let (value, node) = lon, !(-180...180).contains(value) {
                fail(.outOfRange, node, "\(path).lon", "longitude \(value) is outside [-180, 180]")
                ok = false
            }
            var parsedRole: NodeRole?
            if let (value, node) = role {
                parsedRole = NodeRole(rawValue: value)
                if parsedRole == nil {
                    let roles = NodeRole.allCases.map(\.rawValue).joined(separator: ", ")
                    fail(.invalidValue, node, "\(path).role", "unknown role '\(value)' (one of: \(roles))")
                    ok = false
                }
            }
            var endpoint: Endpoint?
            if let (value, node) = string(map, "endpoint", path: path, required: false, owner: item) {
                endpoint = parseEndpoint(value)
                if let endpoint {
                    if let other = endpoints[endpoint] {
                        fail(.duplicateID, node, "\(path).endpoint", "endpoint \(endpoint) is already used by node '\(other)'")
                        ok = false
                    } else {
                        endpoints[endpoint] = id?.0 ?? "?"
                    }
                } else {
                    fail(.invalidValue, node, "\(path).endpoint", "'\(value)' must be host:port with port in 1...65534 (control listens on port + 1)")
                    ok = false
                }
            }
            if let (value, node) = id {
                let nodeID = NodeID(value)
                if value.hasPrefix("eve:") {
                    fail(.invalidValue, node, "\(path).id", "node id '\(value)': the prefix 'eve:' is reserved for eavesdroppers on links")
                    continue
                }
                if let first = firstSeen[nodeID] {
                    fail(.duplicateID, node, "\(path).id", "duplicate node id '\(value)' (first defined at nodes[\(first)])")
                    continue
                }
                firstSeen[nodeID] = i
            }
            var orbit: CircularOrbit?, station: GroundSite?
            if satellite {
                for key in ["lat", "lon", "altitude_m", "min_elevation_deg", "night_only"] where map[key] != nil {
                    fail(.invalidValue, map[key], "\(path).\(key)", "a satellite's position comes from its orbit: remove '\(key)'")
                    ok = false
                }
                if let node = map["orbit"] {
                    orbit = parseOrbit(node, path: "\(path).orbit")
                    ok = ok && orbit != nil
                } else {
                    fail(.missingField, item, "\(path).orbit", "a satellite needs an orbit (\(TopologyParser.orbitKeys.joined(separator: ", ")))")
                    ok = false
                }
            } else if let at = map["orbit"] {
                fail(.invalidValue, at, "\(path).orbit", "only a satellite has an orbit")
                ok = false
            }
            if parsedRole == .groundStation, let lat, let lon {
                let altitude = bounded(map, "altitude_m", path: path, owner: item, required: false, -500, 9_000, unit: " m")
                let minimum = bounded(map, "min_elevation_deg", path: path, owner: item, required: false, 0, 90, upperInclusive: false, unit: "°")
                var nightOnly = false
                if let value = map["night_only"] {
                    if let flag = value.bool { nightOnly = flag } else {
                        fail(.wrongType, value, "\(path).night_only", "must be true or false")
                        ok = false
                    }
                }
                station = GroundSite(latitudeDegrees: lat.0, longitudeDegrees: lon.0, altitudeMetres: altitude ?? 0, minimumElevationDegrees: minimum ?? 10,
                                     nightOnly: nightOnly)
            } else if !satellite {
                for key in ["altitude_m", "min_elevation_deg", "night_only"] where map[key] != nil {
                    fail(.invalidValue, map[key], "\(path).\(key)", "'\(key)' belongs to a ground station")
                    ok = false
                }
            }
            guard ok, let id, let lat, let lon, let parsedRole else { continue }
            nodes.append(TopologyNode(id: NodeID(id.0), latitude: lat.0, longitude: lon.0,
                                      role: parsedRole, endpoint: endpoint, orbit: orbit, station: station))
        }
        return nodes
    }

    mutating func parseLinks(_ top: Node.Mapping, root: Node, known: Set<NodeID>, roles: [NodeID: NodeRole],
                             defaults: PhysicsParameters) -> [TopologyLink] {
        guard let items = sequence(top, "links", required: true, owner: root) else { return [] }
        var links: [TopologyLink] = []
        var pairs: [Set<NodeID>: Int] = [:]
        var names: [String: Int] = [:]
        for (i, path, map, item) in entries(items, section: "links", keys: TopologyParser.linkKeys,
                                            shape: "link must be a mapping with a, b, length_km") {
            let a = string(map, "a", path: path, required: true, owner: item)
            let b = string(map, "b", path: path, required: true, owner: item)
            var freeSpace = false
            if let (type, at) = string(map, "type", path: path, required: false, owner: item) {
                if type == "free-space" { freeSpace = true } else if type != "fibre" {
                    fail(.invalidValue, at, "\(path).type", "unknown link type '\(type)' (one of: fibre, free-space)")
                }
            }
            let length = freeSpace ? (0, item) : number(map, "length_km", path: path, required: true, owner: item)
            var ok = a != nil && b != nil && length != nil
            var medium = LinkMedium.fibre
            var background = SkyBackground.dark
            if freeSpace {
                if let at = map["length_km"] {
                    fail(.invalidValue, at, "\(path).length_km", "a free-space link has no length: its range follows the orbit")
                    ok = false
                }
                let ends = [a, b].compactMap { $0.flatMap { roles[NodeID($0.0)] } }
                if ends.count == 2, Set(ends) != [.satellite, .groundStation] {
                    fail(.invalidValue, item, path, "a free-space link joins a satellite and a ground station, not \(ends.map(\.rawValue).joined(separator: " and "))")
                    ok = false
                }
                if let node = map["channel"] {
                    if let (channel, sky) = parseChannel(node, path: "\(path).channel") {
                        medium = .freeSpace(channel)
                        background = sky
                    } else {
                        ok = false
                    }
                } else {
                    fail(.missingField, item, "\(path).channel", "a free-space link needs a channel: loss_table, or \(TopologyParser.budgetKeys.joined(separator: ", "))")
                    ok = false
                }
            } else {
                if let at = map["channel"] {
                    fail(.invalidValue, at, "\(path).channel", "only a free-space link (type: free-space) has a channel")
                    ok = false
                }
                for end in [a, b] {
                    if let (value, node) = end, roles[NodeID(value)] == .satellite {
                        fail(.invalidValue, node, path, "no fibre reaches satellite '\(value)': make the link type: free-space")
                        ok = false
                    }
                }
            }
            for (end, key) in [(a, "a"), (b, "b")] {
                if let (value, node) = end, !known.contains(NodeID(value)) {
                    fail(.unknownNode, node, "\(path).\(key)", "unknown node '\(value)'")
                    ok = false
                }
            }
            if let (av, _) = a, let (bv, bNode) = b, av == bv {
                fail(.selfLoop, bNode, path, "link connects node '\(av)' to itself")
                ok = false
            }
            if !freeSpace, let (value, node) = length, !(value > 0 && value <= 100_000) {
                fail(.outOfRange, node, "\(path).length_km", "length \(value) km must be in (0, 100000]")
                ok = false
            }
            var physics = defaults
            if let overrides = map["physics"] {
                physics = self.physics(overrides, base: defaults, path: "\(path).physics")
            }
            guard ok, let a, let b, let length else { continue }
            let pair: Set<NodeID> = [NodeID(a.0), NodeID(b.0)]
            if let first = pairs[pair] {
                fail(.duplicateLink, item, path, "a link between '\(a.0)' and '\(b.0)' is already defined at links[\(first)]")
                continue
            }
            let name = "\(a.0)-\(b.0)"
            if let first = names[name] ?? names["\(b.0)-\(a.0)"] {
                fail(.duplicateLink, item, path, "link name '\(name)' is ambiguous with links[\(first)]")
                continue
            }
            pairs[pair] = i
            names[name] = i
            links.append(TopologyLink(index: LinkIndex(UInt32(links.count)), a: NodeID(a.0),
                                      b: NodeID(b.0), lengthKm: length.0, physics: physics, medium: medium, background: background))
        }
        return links
    }

    /// The `kme` section: every field optional, each checked against its range.
    mutating func parseKME(_ top: Node.Mapping) -> KMELimits {
        var limits = KMELimits()
        guard let value = top["kme"] else { return limits }
        guard case .mapping(let map) = value else {
            fail(.wrongType, value, "kme", "must be a mapping of \(TopologyParser.kmeKeys.joined(separator: ", "))")
            return limits
        }
        checkKeys(map, allowed: TopologyParser.kmeKeys, path: "kme")
        if let (seconds, node) = number(map, "key_retention_s", path: "kme", required: false, owner: value) {
            if seconds > 0 && seconds <= 30 * 86_400 { limits.keyRetentionSeconds = seconds } else {
                fail(.outOfRange, node, "kme.key_retention_s", "\(seconds) is outside (0, 2592000] (30 days)")
            }
        }
        for (key, range, keyPath) in [("max_waiting_bits_per_pair", 8...1 << 30, \KMELimits.maxWaitingBitsPerPair),
                                      ("max_requests_per_sae", 1...10_000, \KMELimits.maxRequestsPerSAE),
                                      ("max_requests", 1...100_000, \KMELimits.maxRequests)] {
            guard let (n, node) = number(map, key, path: "kme", required: false, owner: value) else { continue }
            if n.rounded() == n, n >= Double(range.lowerBound), n <= Double(range.upperBound) { limits[keyPath: keyPath] = Int(n) } else {
                fail(.outOfRange, node, "kme.\(key)", "must be an integer in \(range.lowerBound)...\(range.upperBound), got \(n)")
            }
        }
        if limits.maxRequestsPerSAE > limits.maxRequests, let node = map["max_requests_per_sae"] {
            fail(.invalidValue, node, "kme.max_requests_per_sae", "\(limits.maxRequestsPerSAE) exceeds kme.max_requests \(limits.maxRequests)")
        }
        return limits
    }

    mutating func parseSAEs(_ top: Node.Mapping, known: Set<NodeID>) -> [SAE] {
        guard let value = top["saes"] else { return [] }
        guard case .sequence(let items) = value else {
            fail(.wrongType, value, "saes", "must be a list")
            return []
        }
        var saes: [SAE] = []
        var seen: [String: Int] = [:]
        for (i, path, map, item) in entries(Array(items), section: "saes", keys: TopologyParser.saeKeys,
                                            shape: "SAE must be a mapping with id and node") {
            guard let (id, idNode) = string(map, "id", path: path, required: true, owner: item),
                  let (node, nodeNode) = string(map, "node", path: path, required: true, owner: item)
            else { continue }
            guard isValidIdentifier(id) else {
                fail(.invalidValue, idNode, "\(path).id", "'\(id)' must be 1-64 letters, digits, '.', '_' or '-'")
                continue
            }
            if let first = seen[id] {
                fail(.duplicateID, idNode, "\(path).id", "duplicate SAE id '\(id)' (first defined at saes[\(first)])")
                continue
            }
            // The KME of a node and an SAE are told apart by their certificates' common names:
            // one name for both would let either stand for the other.
            guard !known.contains(NodeID(id)) else {
                fail(.duplicateID, idNode, "\(path).id", "SAE id '\(id)' is also a node id (SAE and KME names must differ)")
                continue
            }
            guard known.contains(NodeID(node)) else {
                fail(.unknownNode, nodeNode, "\(path).node", "unknown node '\(node)'")
                continue
            }
            var policy: KeyPolicy?
            if let (text, at) = string(map, "key_policy", path: path, required: false, owner: item) {
                guard let parsed = KeyPolicy(text) else {
                    fail(.invalidValue, at, "\(path).key_policy", "'\(text)' is not a key policy (\(KeyPolicy.names))")
                    continue
                }
                policy = parsed
            }
            seen[id] = i
            saes.append(SAE(id: id, node: NodeID(node), keyPolicy: policy))
        }
        return saes
    }

    /// Applies the physics fields of `node` on top of `base`, checking each range and the
    /// constraints between fields (ν < μ, probabilities summing to 1).
    mutating func physics(_ node: Node, base: PhysicsParameters, path: String) -> PhysicsParameters {
        guard case .mapping(let map) = node else {
            fail(.wrongType, node, path, "must be a mapping of physics parameters")
            return base
        }
        checkKeys(map, allowed: PhysicsParameters.allKeys, path: path)
        var result = base
        for field in PhysicsParameters.fields {
            guard let (value, valueNode) = number(map, field.key, path: path, required: false, owner: node) else { continue }
            if field.accepts(value) {
                result[keyPath: field.keyPath] = value
            } else {
                fail(.outOfRange, valueNode, "\(path).\(field.key)",
                     "\(value) is outside \(field.rangeDescription) (\(field.unit))")
            }
        }
        if let value = map[PhysicsParameters.decoyStatesKey] {
            if let flag = value.bool { result.decoyStates = flag } else {
                fail(.wrongType, value, "\(path).\(PhysicsParameters.decoyStatesKey)", "must be true or false")
            }
        }
        if let value = map[PhysicsParameters.finiteKeyKey] {
            if let bound = value.string.flatMap(FiniteKeyBound.init(rawValue:)) { result.finiteKey = bound } else {
                fail(.invalidValue, value, "\(path).\(PhysicsParameters.finiteKeyKey)",
                     "must be one of \(FiniteKeyBound.allCases.map(\.rawValue).joined(separator: ", ")), got '\(value.string ?? "a collection")'")
            }
        }
        // Lim et al. (2014) need three intensities μ1 > μ2 + μ3, μ2 > μ3 = 0 (vacuum), each sent.
        if result.finiteKey == .lim2014 && result.decoyStates
            && (result.decoyIntensity <= 0 || result.decoyProbability <= 0 || result.vacuumProbability <= 0) {
            fail(.invalidValue, map[PhysicsParameters.finiteKeyKey] ?? node, "\(path).\(PhysicsParameters.finiteKeyKey)",
                 "lim2014 needs a weak decoy (decoy_intensity > 0, decoy_probability > 0) and vacuum pulses (vacuum_probability > 0); use 'asymptotic' otherwise")
        }
        if result.decoyIntensity >= result.signalIntensity {
            fail(.outOfRange, map["decoy_intensity"] ?? node, "\(path).decoy_intensity",
                 "decoy intensity \(result.decoyIntensity) must be below signal intensity \(result.signalIntensity)")
        }
        let sum = result.signalProbability + result.decoyProbability + result.vacuumProbability
        if abs(sum - 1) > 1e-9 {
            fail(.invalidValue, node, path,
                 "signal_probability + decoy_probability + vacuum_probability = \(sum), must be 1")
        }
        return result
    }

    // MARK: Helpers

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func isValidIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.unicodeScalars.allSatisfy {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
                || $0 == "-" || $0 == "_" || $0 == "."
        }
    }

    func parseEndpoint(_ s: String) -> Endpoint? {
        guard let colon = s.lastIndex(of: ":") else { return nil }
        let host = String(s[..<colon])
        guard !host.isEmpty, let port = Int(s[s.index(after: colon)...]), (1...65534).contains(port)
        else { return nil }
        return Endpoint(host: host, port: port)
    }

    /// The allowed key nearest to `name` by edit distance, if it is close enough to be a typo.
    func closest(to name: String, in allowed: [String]) -> String? {
        let scored = allowed.map { ($0, editDistance(Array(name), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, name.count / 3)
        else { return nil }
        return best.0
    }

    func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            previous = current
        }
        return previous[b.count]
    }
}
