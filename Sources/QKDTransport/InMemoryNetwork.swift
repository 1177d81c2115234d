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
    /// Interposers between two nodes (an in-process eavesdropper): they carry every frame either
    /// end sends the other through a splice, and say where it goes on and with what bytes.
    private var interposers: [Set<NodeID>: Interposer] = [:]
    /// (sender, peer) pairs whose sender sends through the pair's interposer.
    private var spliced: Set<[NodeID]> = []

    /// Carries one frame from `from` (one end) on: the receiving end, the sender id it sees,
    /// and the bytes; nil drops the frame.
    public typealias Interposer = @Sendable (_ frame: [UInt8], _ from: NodeID) -> (to: NodeID, as: NodeID, frame: [UInt8])?

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

    /// Whether events wait in `node`'s mailbox.
    public func hasEvents(_ node: NodeID) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return !(mailboxes[node]?.isEmpty ?? true)
    }

    /// Installs an interposer between `a` and `b`; frames go through it once an end splices
    /// (`NodeTransport.splice`, on that end's `splice` control request). Nil takes it out.
    public func setInterposer(_ a: NodeID, _ b: NodeID, _ interposer: Interposer?) {
        condition.lock()
        interposers[[a, b]] = interposer
        if interposer == nil { spliced = spliced.filter { Set($0) != [a, b] } }
        condition.unlock()
    }

    func splice(_ sender: NodeID, to peer: NodeID, on: Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !on || interposers[[sender, peer]] != nil else { return false }
        if on { spliced.insert([sender, peer]) } else { spliced.remove([sender, peer]) }
        return true
    }

    /// Sends a peer frame, through the interposer if the sender spliced it in.
    func send(_ frame: [UInt8], from sender: NodeID, to peer: NodeID) -> Bool {
        condition.lock()
        let interposer = spliced.contains([sender, peer]) ? interposers[[sender, peer]] : nil
        condition.unlock()
        guard let interposer else { return deliver(.peer(from: sender, frame: frame), to: peer, from: sender) }
        guard let (to, as: seen, frame: carried) = interposer(frame, sender) else { return true }
        return deliver(.peer(from: seen, frame: carried), to: to, from: sender)
    }

    /// Delivers `.stopRequested` to `node`, as SIGTERM would.
    public func requestStop(_ node: NodeID) {
        deliver(.stopRequested, to: node)
    }

    /// Sends a control request to `node` and waits for the reply (nil after `timeoutMs`).
    public func control(_ request: [UInt8], to node: NodeID, timeoutMs: Int) -> [UInt8]? {
        let client = sendControl(request, to: node)
        let reply = receive(client, timeoutMs: timeoutMs).first
        condition.lock()
        mailboxes[client] = nil
        condition.unlock()
        if case .control(_, let bytes) = reply { return bytes }
        return nil
    }

    /// Sends a control request to `node` without waiting; the reply is collected with
    /// `takeReply` (for a test that steps every node itself, on one thread).
    public func sendControl(_ request: [UInt8], to node: NodeID) -> NodeID {
        let client = NodeID("client-\(UUID().uuidString)")
        condition.lock()
        mailboxes[client] = []
        condition.unlock()
        deliver(.control(client: Array(client.rawValue.utf8), request: request), to: node)
        return client
    }

    /// The reply to a `sendControl` request, once it has come (the client is then forgotten).
    public func takeReply(_ client: NodeID) -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        guard let events = mailboxes[client], let first = events.first, case .control(_, let bytes) = first else { return nil }
        mailboxes[client] = nil
        return bytes
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
        network.send(frame, from: node, to: peer)
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

    /// Splices the interposer the test installed between this node and `peer` (`endpoint` is
    /// not used: there is one per pair), or takes it out with nil.
    public func splice(_ peer: NodeID, through interposer: InterposerEndpoint?) -> String? {
        network.splice(node, to: peer, on: interposer != nil) ? nil : "no interposer between \(node) and \(peer) in this in-memory network"
    }

    public func close() { network.remove(node) }
}
