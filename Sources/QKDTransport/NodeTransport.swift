import QKDCore

/// Something that arrived at a node.
public enum TransportEvent: Equatable {
    /// A frame on the peer channel, with the sender's claimed node id (its routing id).
    case peer(from: NodeID, frame: [UInt8])
    /// A control request; `client` is the opaque address to reply to.
    case control(client: [UInt8], request: [UInt8])
    /// A message that could not even be split into sender and frame.
    case malformed(reason: String)
    /// A connection refused before any of its messages arrived (a CURVE key not admitted).
    case refused(reason: String)
    /// The process was asked to stop (SIGTERM, SIGINT).
    case stopRequested
    /// Another thread of this node has work for the event loop (see `Waker`).
    case wake
}

/// A node's view of the network: send to a neighbour, answer a control client, wait for
/// events. Implementations are used from one thread only.
public protocol NodeTransport: AnyObject {
    /// Queues `frame` for `peer` without blocking; false if it was dropped (peer unknown,
    /// not connected, or its queue is full).
    @discardableResult
    func send(_ frame: [UInt8], to peer: NodeID) -> Bool

    /// Answers a control request.
    func reply(_ bytes: [UInt8], to client: [UInt8])

    /// Returns what arrived, waiting at most `timeoutMs` for the first event.
    func wait(timeoutMs: Int) -> [TransportEvent]

    /// A waker that interrupts `wait` from any thread.
    func makeWaker() -> any Waker

    /// Sends everything for `peer` through an interposer from now on (an eavesdropper spliced
    /// into the fibre and the public channel), and admits her frames under her id; directly
    /// again with nil (her key no longer admitted). Returns why it cannot, or nil.
    func splice(_ peer: NodeID, through interposer: InterposerEndpoint?) -> String?

    /// Releases every socket. No call may follow.
    func close()
}
