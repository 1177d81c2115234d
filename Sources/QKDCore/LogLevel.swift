/// How much a log line matters, as the pure instances of a node say it. Shells map it onto
/// their logger's levels; instances never log themselves, they return a log directive.
public enum LogLevel: String, Sendable {
    case debug, info, notice, warning, error
}
