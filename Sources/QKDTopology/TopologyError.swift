/// One problem found in a topology file: which file, where, which field, what is wrong.
public struct TopologyError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case unreadable
        case syntax
        case wrongType
        case missingField
        case unknownField
        case invalidValue
        case outOfRange
        case duplicateID
        case unknownNode
        case selfLoop
        case duplicateLink
    }

    public let code: Code
    public let file: String
    /// 1-based line and column of the offending YAML node, when known.
    public let line: Int?
    public let column: Int?
    /// The field path, such as `links[3].b` or `defaults.misalignment`.
    public let field: String
    public let message: String

    public init(code: Code, file: String, line: Int?, column: Int?, field: String,
                message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        let fieldPart = field.isEmpty ? "" : " \(field):"
        return "\(location):\(fieldPart) \(message) [\(code.rawValue)]"
    }
}

/// Every problem found in one file. A file with any problem yields no `Topology`.
public struct TopologyValidationError: Error, Sendable, CustomStringConvertible {
    public let errors: [TopologyError]

    public init(errors: [TopologyError]) { self.errors = errors }

    public var description: String {
        let plural = errors.count == 1 ? "" : "s"
        return "invalid topology (\(errors.count) error\(plural)):\n"
            + errors.map { "  " + $0.description }.joined(separator: "\n")
    }
}
