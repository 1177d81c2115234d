import Foundation
import QKDCore

/// An in-process stand-in for the ZeroMQ network, for tests: every node of a topology can run
/// inside one test process, deterministically. Links can be cut to emulate failures.
///
/// `@unchecked Sendable`: every stored property is read and written only while holding
/// `condition`'s lock.
public final class InMemoryNetwork: @unchecked Sendable {
    private let condition = NSCondition()
    private var mailboxes: [NodeID: [TransportEvent]] = [:]
    private var cut: Set<Set<NodeID>> = []
    private var stopped: Set<NodeID> = []

    public init() {}

    /// Creates the transport of `node`.
    public func transport(for node: NodeID) -> InMemoryTransport {
        condition.lock()
        mailboxes[node] = mailboxes[node] ?? []
        condition.unlock()
        return InMemoryTransport(network: self, node: node)
    }

    /// Drops every frame between `a` and `b` from now on (both directions).
    public func cutLink(_ a: NodeID, _ b: NodeID) {
        condition.lock()
        cut.insert([a, b])
        condition.unlock()
    }

    public func healLink(_ a: NodeID, _ b: NodeID) {
        condition.lock()
        cut.remove([a, b])
        condition.unlock()
    }

    /// Delivers `.stopRequested` to `node`, as SIGTERM would.
    public func requestStop(_ node: NodeID) {
        deliver(.stopRequested, to: node)
    }

    /// Sends a control request to `node` and waits for the reply (nil after `timeoutMs`).
    public func control(_ request: [UInt8], to node: NodeID, timeoutMs: Int) -> [UInt8]? {
        let client = NodeID("client-\(UUID().uuidString)")
        condition.lock()
        mailboxes[client] = []
        condition.unlock()
        deliver(.control(client: Array(client.rawValue.utf8), request: request), to: node)
        let reply = receive(client, timeoutMs: timeoutMs).first
        condition.lock()
        mailboxes[client] = nil
        condition.unlock()
        if case .control(_, let bytes) = reply { return bytes }
        return nil
    }

    @discardableResult
    func deliver(_ event: TransportEvent, to node: NodeID, from sender: NodeID? = nil) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if let sender, cut.contains([sender, node]) { return false }
        guard mailboxes[node] != nil else { return false }
        mailboxes[node]!.append(event)
        condition.broadcast()
        return true
    }

    func receive(_ node: NodeID, timeoutMs: Int) -> [TransportEvent] {
        let deadline = Date(timeIntervalSinceNow: Double(timeoutMs) / 1000)
        condition.lock()
        defer { condition.unlock() }
        while mailboxes[node]?.isEmpty ?? false {
            if !condition.wait(until: deadline) { break }
        }
        let events = mailboxes[node] ?? []
        mailboxes[node] = events.isEmpty ? mailboxes[node] : []
        return events
    }

    func remove(_ node: NodeID) {
        condition.lock()
        mailboxes[node] = nil
        condition.unlock()
    }
}

/// One node's end of an `InMemoryNetwork`.
public final class InMemoryTransport: NodeTransport {
    private let network: InMemoryNetwork
    private let node: NodeID

    init(network: InMemoryNetwork, node: NodeID) {
        self.network = network
        self.node = node
    }

    @discardableResult
    public func send(_ frame: [UInt8], to peer: NodeID) -> Bool {
        network.deliver(.peer(from: node, frame: frame), to: peer, from: node)
    }

    public func reply(_ bytes: [UInt8], to client: [UInt8]) {
        guard let name = String(validating: client, as: UTF8.self) else { return }
        network.deliver(.control(client: [], request: bytes), to: NodeID(name))
    }

    public func wait(timeoutMs: Int) -> [TransportEvent] {
        network.receive(node, timeoutMs: timeoutMs)
    }

    public func makeWaker() -> any Waker { InMemoryWaker(network: network, node: node) }

    /// Injects raw bytes as if `sender` had sent them (for hostile-frame tests).
    public func inject(_ frame: [UInt8], from sender: NodeID) {
        network.deliver(.peer(from: sender, frame: frame), to: node)
    }

    public func splice(_ peer: NodeID, through endpoint: String?) -> String? {
        endpoint == nil ? nil : "an in-memory network has no fibre to splice an interposer into"
    }

    public func close() { network.remove(node) }
}
