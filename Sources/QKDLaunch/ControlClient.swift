import CZeroMQ
import Foundation
import QKDCore
import QKDTransport
import QKDWire

/// Sends one control request to many nodes at once and collects their replies until every
/// node answered or the deadline passed. Lives on the calling thread.
public enum ControlClient {
    public static func query(_ endpoints: [(node: NodeID, endpoint: String)], request: ControlRequest,
                             timeoutMs: Int) -> [NodeID: ControlReply]
    {
        let context = ZMQContext()
        var sockets: [(NodeID, ZMQSocket)] = []
        let bytes = ControlCodec.encode(request)
        for (node, endpoint) in endpoints {
            guard let socket = try? ZMQSocket(context: context, kind: .dealer) else { continue }
            guard (try? socket.connect(endpoint)) != nil else { continue }
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
