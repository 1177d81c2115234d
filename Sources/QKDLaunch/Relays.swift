import QKDCore
import QKDWire

extension Network {
    /// Asks `from` to relay a `bits`-bit key to `to` (through the path its routing picks);
    /// returns the report or the node's error.
    public func relay(from: NodeID, to: NodeID, bits: Int = 256, timeoutMs: Int = 15_000) -> Result<RelayReport, LaunchError> {
        let request = ControlRequest.relay(to: to.rawValue, bits: bits)
        guard let reply = query([from], request: request, timeoutMs: timeoutMs)[from] else {
            return .failure(LaunchError(.control, "node \(from) did not answer within \(timeoutMs) ms"))
        }
        if let report = reply.relay { return .success(report) }
        return .failure(LaunchError(.control, reply.error ?? "node \(from) gave no relay report"))
    }

    /// The path `from` would choose for a relay to `to`, and the links it leaves out.
    public func routes(from: NodeID, to: NodeID, bits: Int = 256) -> Result<RouteReport, LaunchError> {
        let request = ControlRequest.routes(to: to.rawValue, bits: bits)
        guard let reply = query([from], request: request, timeoutMs: 3000)[from] else {
            return .failure(LaunchError(.control, "node \(from) did not answer"))
        }
        if let report = reply.routes { return .success(report) }
        return .failure(LaunchError(.control, reply.error ?? "node \(from) gave no route report"))
    }

    /// What every live node knows of relayed key `keyID` (path, and an HMAC of the key under
    /// `salt` so that the two ends can be compared).
    public func relayShow(keyID: String, salt: UInt64) -> [NodeID: RelayReport] {
        let request = ControlRequest.relayShow(keyID: keyID, salt: salt)
        let replies = query(Array(livePIDs().keys), request: request, timeoutMs: 3000)
        return replies.compactMapValues(\.relay)
    }
}
