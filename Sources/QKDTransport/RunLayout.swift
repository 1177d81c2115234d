import QKDCore
import QKDTopology

/// Where a running network keeps its files and which endpoints its nodes use. One run
/// directory per network (by default `.run/<topology name>/`):
///
///     topology.yaml      the topology the nodes were started with (a copy)
///     network.json       what qkdctl needs to find the network
///     pids/<ID>.pid      each node's PID, written by the launcher
///     logs/<ID>.log      each node's structured log
///     logs/<ID>.out      each node's standard output and error (the readiness line)
///     sock/<ID>.peer     ipc:// endpoint of the node's peer (ROUTER) socket
///     sock/<ID>.ctl      ipc:// endpoint of the node's control socket
///     store/<ID>.sqlite  each node's key pools (SQLite, WAL), keys sealed under
///     store/<ID>.kek     the node's key-encryption key (mode 0600)
///     bootstrap/<ID>/<LINK>.key  a secret run's pre-shared secret of each link, installed at
///                        both ends by the launcher (mode 0600)
///     pki/curve/node/<ID>.pub, .key   each node's CURVE key pair (peer and control sockets)
///     pki/curve/control.pub, .key     the control client's (qkdctl, the test harness)
///     pki/curve/eve/<LINK>.pub, .key  an eavesdropper's, made when she is added
///     eve/<LINK>.pid     an eavesdropper process spliced into a link (qkdctl eve add)
///     eve/<LINK>.json    its settings; its output in logs/eve-<LINK>.out
///     sock/eve-<LINK>.*  its peer and control endpoints
public struct RunLayout: Sendable, Equatable {
    /// Absolute path of the run directory.
    public let root: String

    /// The longest path a Unix-domain socket address holds (sockaddr_un.sun_path, less NUL).
    public static let maxIPCPathLength = 107

    public init(root: String) { self.root = root }

    public var topologyPath: String { root + "/topology.yaml" }
    public var networkPath: String { root + "/network.json" }
    public var pidsDirectory: String { root + "/pids" }
    public var logsDirectory: String { root + "/logs" }
    public var socketsDirectory: String { root + "/sock" }
    public var storeDirectory: String { root + "/store" }
    public var bootstrapDirectory: String { root + "/bootstrap" }
    /// Where `node` keeps the bootstrap secret of `link` (a secret run only).
    public func bootstrapPath(_ node: NodeID, link: String) -> String { "\(bootstrapDirectory)/\(node.rawValue)/\(link).key" }
    /// The network's PKI for ETSI GS QKD 014 (created by the launcher).
    public var pkiDirectory: String { root + "/pki" }
    /// The KMEs' ML-KEM-768 key pairs for hybrid keys (`NODE.seed`, `NODE.pub`; `KMEKeys`).
    public var kemDirectory: String { root + "/pki/mlkem" }
    public var caCertificatePath: String { pkiDirectory + "/ca.pem" }
    public func kmeCertificatePath(_ node: NodeID) -> String { "\(pkiDirectory)/kme/\(node.rawValue).pem" }
    public func kmeKeyPath(_ node: NodeID) -> String { "\(pkiDirectory)/kme/\(node.rawValue).key" }

    public var curveDirectory: String { pkiDirectory + "/curve" }
    public func nodePublicKeyPath(_ node: NodeID) -> String { "\(curveDirectory)/node/\(node.rawValue).pub" }
    public func nodeSecretKeyPath(_ node: NodeID) -> String { "\(curveDirectory)/node/\(node.rawValue).key" }
    public var controlPublicKeyPath: String { curveDirectory + "/control.pub" }
    public var controlSecretKeyPath: String { curveDirectory + "/control.key" }
    public func evePublicKeyPath(_ link: String) -> String { "\(curveDirectory)/eve/\(link).pub" }
    public func eveSecretKeyPath(_ link: String) -> String { "\(curveDirectory)/eve/\(link).key" }

    public func nodeKeys(_ node: NodeID) throws(CurveKeyError) -> CurveKeyPair {
        try CurveKeyFile.readPair(public: nodePublicKeyPath(node), secret: nodeSecretKeyPath(node))
    }

    public func controlKeys() throws(CurveKeyError) -> CurveKeyPair {
        try CurveKeyFile.readPair(public: controlPublicKeyPath, secret: controlSecretKeyPath)
    }

    /// What `node`'s transport needs: its key pair, its neighbours' public keys, the control key.
    public func channelKeys(_ node: NodeID, topology: Topology) throws(CurveKeyError) -> ChannelKeys {
        var neighbours: [NodeID: String] = [:]
        for link in topology.links(of: node) {
            guard let peer = link.peer(of: node) else { continue }
            neighbours[peer] = try CurveKeyFile.read(nodePublicKeyPath(peer))
        }
        return ChannelKeys(own: try nodeKeys(node), neighbours: neighbours, control: [try CurveKeyFile.read(controlPublicKeyPath)])
    }

    public func pidPath(_ node: NodeID) -> String { "\(pidsDirectory)/\(node.rawValue).pid" }
    public func logPath(_ node: NodeID) -> String { "\(logsDirectory)/\(node.rawValue).log" }
    public func outputPath(_ node: NodeID) -> String { "\(logsDirectory)/\(node.rawValue).out" }

    public var eveDirectory: String { root + "/eve" }
    public func evePIDPath(_ link: String) -> String { "\(eveDirectory)/\(link).pid" }
    public func eveSettingsPath(_ link: String) -> String { "\(eveDirectory)/\(link).json" }
    public func eveOutputPath(_ link: String) -> String { "\(logsDirectory)/eve-\(link).out" }
    /// Where an eavesdropper on `link` receives both ends' frames.
    public func evePeerEndpoint(_ link: String) -> String { "ipc://\(socketsDirectory)/eve-\(link).peer" }
    /// Where it answers qkdctl.
    public func eveControlEndpoint(_ link: String) -> String { "ipc://\(socketsDirectory)/eve-\(link).ctl" }

    /// The endpoint a node's peer socket binds and its neighbours connect to.
    public func peerEndpoint(_ node: TopologyNode) -> String {
        if let endpoint = node.endpoint { return "tcp://\(endpoint.host):\(endpoint.port)" }
        return "ipc://\(socketsDirectory)/\(node.id.rawValue).peer"
    }

    /// The endpoint a node's control socket binds and qkdctl connects to.
    public func controlEndpoint(_ node: TopologyNode) -> String {
        if let endpoint = node.endpoint { return "tcp://\(endpoint.host):\(endpoint.port + 1)" }
        return "ipc://\(socketsDirectory)/\(node.id.rawValue).ctl"
    }

    /// Checks that every ipc:// endpoint of `topology` fits in a socket address; returns a
    /// message naming the run directory when one does not.
    public func validateEndpoints(for topology: Topology) -> String? {
        for node in topology.nodes where node.endpoint == nil {
            for endpoint in [peerEndpoint(node), controlEndpoint(node)] {
                let path = endpoint.dropFirst("ipc://".count)
                if path.utf8.count > RunLayout.maxIPCPathLength {
                    return "run directory '\(root)' is too deep: ipc socket path '\(path)' is \(path.utf8.count) bytes, the limit is \(RunLayout.maxIPCPathLength); choose a shorter --run-dir"
                }
            }
        }
        return nil
    }
}
