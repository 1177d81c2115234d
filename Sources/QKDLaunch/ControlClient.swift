import CZeroMQ
import Foundation
import QKDCore
import QKDTransport
import QKDWire

/// A control socket to ask: whose it is (a node, or an eavesdropper by link), where, and the
/// CURVE public key its server proves.
public struct ControlTarget: Sendable {
    public let node: NodeID
    public let endpoint: String
    public let serverKey: String

    public init(node: NodeID, endpoint: String, serverKey: String) {
        self.node = node
        self.endpoint = endpoint
        self.serverKey = serverKey
    }
}

/// Sends one control request to many nodes at once and collects their replies until every
/// node answered or the deadline passed. Every request travels in a CURVE session as the
/// control key (`credentials`), the only client key a node's control socket admits. Lives on
/// the calling thread.
public enum ControlClient {
    public static func query(_ targets: [ControlTarget], credentials: CurveKeyPair, request: ControlRequest,
                             timeoutMs: Int) -> [NodeID: ControlReply]
    {
        let context = ZMQContext()
        var sockets: [(NodeID, ZMQSocket)] = []
        let bytes = ControlCodec.encode(request)
        for target in targets {
            let node = target.node
            guard let socket = try? ZMQSocket(context: context, kind: .dealer) else { continue }
            guard (try? socket.makeCurveClient(credentials, serverKey: target.serverKey)) != nil,
                  (try? socket.connect(target.endpoint)) != nil else { continue }
            // Queued until the connection completes; dropped at close if it never does.
            socket.send([bytes])
            sockets.append((node, socket))
        }
        var replies: [NodeID: ControlReply] = [:]
        let deadline = Date(timeIntervalSinceNow: Double(timeoutMs) / 1000)
        while replies.count < sockets.count {
            let left = Int(deadline.timeIntervalSinceNow * 1000)
            if left <= 0 { break }
            let pending = sockets.filter { replies[$0.0] == nil }
            let ready = zmqPoll(sockets: pending.map(\.1), fds: [], timeoutMs: left)
            for i in ready {
                let (node, socket) = pending[i]
                guard let (parts, _) = socket.receive(), let last = parts.last else { continue }
                replies[node] = (try? ControlCodec.decode(ControlReply.self, from: last))
                    ?? ControlReply(error: "unreadable reply from \(node)")
            }
        }
        for (_, socket) in sockets { socket.close() }
        return replies
    }
}
