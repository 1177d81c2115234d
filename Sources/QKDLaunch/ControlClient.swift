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

/// Sends control requests to many nodes at once and collects their replies until every node
/// answered or the deadline passed. Every request travels in a CURVE session as the control
/// key, the only client key a node's control socket admits.
///
/// Sessions to control sockets are kept from one request to the next: a CURVE handshake costs
/// the node two more turns of its event loop (the ZAP request is answered there) and both sides
/// four more wake-ups of their libzmq I/O threads, which on a machine that a large network
/// keeps saturated is most of a query's time (measured on the 105-node mesh at 1/50 time
/// scale: a fresh session per query had no reply within 1.5 s from any node). A request takes
/// an idle session to each node (or opens one) for itself, so requests from several threads
/// run at once; a session comes back idle only once its reply came. One whose reply did not
/// come in time is parked until the late reply comes (it is dropped: a late reply must never
/// be taken for the next request's), so a handshake slower than one request's timeout still
/// completes and serves the requests after it.
///
/// `@unchecked Sendable`: `idle`, `parked` and `serverKeys` are used only while `lock` is held; a session
/// taken out of `idle` belongs to one request until it is put back (libzmq sockets may change
/// threads behind a lock); the context is thread-safe.
public final class ControlSession: @unchecked Sendable {
    private struct Session {
        let endpoint: String
        let serverKey: String
        let clientKey: String
        let socket: ZMQSocket
    }

    /// Idle sessions kept per endpoint (more are closed when they come back).
    static let idlePerEndpoint = 8

    private let lock = NSLock()
    private let context = ZMQContext()
    private var idle: [String: [Session]] = [:]
    /// Sessions whose reply did not come in time, with until when their late reply is awaited:
    /// once it comes (taken and dropped at the start of a later request) the session is idle
    /// again, its handshake done; one still silent at its deadline is closed.
    private var parked: [(session: Session, until: Date)] = []
    static let parkedLimit = 256
    static let parkSeconds: Double = 60
    /// Server public keys read from files, by path (dropped when that server did not answer).
    private var serverKeys: [String: String] = [:]

    /// No deinit: a socket closes itself when released, and holds the context until then.
    public init() {}

    /// The public key in the file at `path`, read once ("" if it cannot be read; not kept).
    public func serverKey(path: String) -> String {
        if let key = lock.withLock({ serverKeys[path] }) { return key }
        guard let key = try? CurveKeyFile.read(path) else { return "" }
        lock.withLock { serverKeys[path] = key }
        return key
    }

    /// Sends `request` to every target and returns the replies that came within `timeoutMs`
    /// (a target missing did not answer in time, or its socket could not be set up).
    public func query(_ targets: [ControlTarget], credentials: CurveKeyPair, request: ControlRequest,
                      timeoutMs: Int) -> [NodeID: ControlReply]
    {
        unpark()
        let bytes = ControlCodec.encode(request)
        var asked: [(node: NodeID, session: Session)] = []
        for target in targets {
            guard let session = take(target, credentials: credentials) else { continue }
            // Queued until the connection completes; dropped at close if it never does.
            guard session.socket.send([bytes]) else {
                discard(session)
                continue
            }
            asked.append((target.node, session))
        }
        var replies: [NodeID: ControlReply] = [:]
        var pending = asked
        let deadline = Date(timeIntervalSinceNow: Double(timeoutMs) / 1000)
        while !pending.isEmpty {
            let left = Int(deadline.timeIntervalSinceNow * 1000)
            if left <= 0 { break }
            var answered: Set<Int> = []
            for i in zmqPoll(sockets: pending.map(\.session.socket), fds: [], timeoutMs: left) {
                let (node, session) = pending[i]
                guard let (parts, _) = session.socket.receive(), let last = parts.last else { continue }
                answered.insert(i)
                replies[node] = (try? ControlCodec.decode(ControlReply.self, from: last))
                    ?? ControlReply(error: "unreadable reply from \(node)")
                putBack(session)
            }
            pending = pending.enumerated().filter { !answered.contains($0.offset) }.map(\.element)
        }
        for (_, session) in pending { park(session) }
        return replies
    }

    /// An idle session to `target` with the same server and client keys, or a new one.
    private func take(_ target: ControlTarget, credentials: CurveKeyPair) -> Session? {
        let found: Session? = lock.withLock {
            var list = idle[target.endpoint] ?? []
            var match: Session?
            list.removeAll { s in
                guard s.serverKey == target.serverKey && s.clientKey == credentials.publicKey else {
                    s.socket.close()  // the node or the control key has a new key
                    return true
                }
                if match == nil {
                    match = s
                    return true
                }
                return false
            }
            idle[target.endpoint] = list
            return match
        }
        if let found { return found }
        guard let socket = try? ZMQSocket(context: context, kind: .dealer) else { return nil }
        guard (try? socket.makeCurveClient(credentials, serverKey: target.serverKey)) != nil,
              (try? socket.connect(target.endpoint)) != nil
        else {
            socket.close()
            return nil
        }
        return Session(endpoint: target.endpoint, serverKey: target.serverKey, clientKey: credentials.publicKey, socket: socket)
    }

    private func putBack(_ session: Session) {
        let kept = lock.withLock {
            guard idle[session.endpoint, default: []].count < ControlSession.idlePerEndpoint else { return false }
            idle[session.endpoint, default: []].append(session)
            return true
        }
        if !kept { session.socket.close() }
    }

    /// Keeps a session whose reply is late until it comes (then the session is idle again).
    private func park(_ session: Session) {
        let kept = lock.withLock {
            guard parked.count < ControlSession.parkedLimit else { return false }
            parked.append((session, Date(timeIntervalSinceNow: ControlSession.parkSeconds)))
            return true
        }
        if !kept { discard(session) }
    }

    /// Drops the late replies that came, making their sessions idle; closes those past their deadline.
    private func unpark() {
        let now = Date()
        let (late, expired): ([Session], [Session]) = lock.withLock {
            var late: [Session] = [], expired: [Session] = [], still: [(session: Session, until: Date)] = []
            for p in parked {
                if p.session.socket.receive() != nil { late.append(p.session) }
                else if p.until <= now { expired.append(p.session) }
                else { still.append(p) }
            }
            parked = still
            return (late, expired)
        }
        for s in late { putBack(s) }
        for s in expired { discard(s) }
    }

    /// Closes a session whose reply did not come, and forgets the server key read for it.
    private func discard(_ session: Session) {
        session.socket.close()
        lock.withLock { serverKeys = serverKeys.filter { $0.value != session.serverKey } }
    }
}
