import QKDCore
import QKDKeyPool
import QKDStore
import QKDTopology
import QKDTransport

/// Installs a secret run's link bootstraps (`LinkBootstrap`): for every link whose two ends do
/// not both hold one yet, a fresh secret from the OS CSPRNG, written to both ends' files
/// (`RunLayout.bootstrapPath`, mode 0600). Kept across restarts of the network, like the
/// stores and the PKI: a node reads its links' transcript-hash keys from them at every start.
/// A reproducible run needs none (both ends derive theirs from the seed).
enum Bootstrap {
    /// Returns how many links got a new bootstrap.
    @discardableResult
    static func ensure(layout: RunLayout, topology: Topology) throws(LaunchError) -> Int {
        guard topology.secrecy == .secret else { return 0 }
        var made = 0
        var random = SecretRandom.system
        for link in topology.links {
            let paths = [layout.bootstrapPath(link.a, link: link.name), layout.bootstrapPath(link.b, link: link.name)]
            let held = paths.map { try? BootstrapFile.read(path: $0) }
            if let first = held[0], let second = held[1], first == second { continue }
            try install(link, layout: layout, random: &random)
            made += 1
        }
        return made
    }

    /// Writes a fresh bootstrap for `link` (from `random`: the OS CSPRNG) to both ends' files,
    /// replacing what they held (`qkdctl up` for a new link, `qkdctl node reset`).
    static func install(_ link: TopologyLink, layout: RunLayout, random: inout SecretRandom) throws(LaunchError) {
        let fresh = LinkBootstrap.random(&random, count: LinkBootstrap.keyCount(freeSpace: link.isFreeSpace))
        do {
            for node in [link.a, link.b] { try BootstrapFile.write(fresh, path: layout.bootstrapPath(node, link: link.name)) }
        } catch {
            throw LaunchError(.io, "link \(link.name): \(error)")
        }
    }
}

/// The run's CURVE key pairs (`RunLayout.curveDirectory`): one per node, one for the control
/// client; made from the OS CSPRNG (libsodium through libzmq) where missing, kept across
/// restarts. Secret keys are mode 0600 in 0700 directories.
enum ChannelKeyFiles {
    /// Returns how many key pairs were made.
    @discardableResult
    static func ensure(layout: RunLayout, topology: Topology) throws(LaunchError) -> Int {
        guard CurveKeyPair.isAvailable else {
            throw LaunchError(.io, "this libzmq was built without CURVE (zmq_has(\"curve\") is 0): install Debian's libzmq3-dev, built with libsodium")
        }
        var made = 0
        var pairs = topology.nodes.map { (layout.nodePublicKeyPath($0.id), layout.nodeSecretKeyPath($0.id)) }
        pairs.append((layout.controlPublicKeyPath, layout.controlSecretKeyPath))
        for (publicPath, secretPath) in pairs {
            if (try? CurveKeyFile.readPair(public: publicPath, secret: secretPath)) != nil { continue }
            do {
                try CurveKeyFile.write(try CurveKeyPair.generate(), public: publicPath, secret: secretPath)
            } catch {
                throw LaunchError(.io, "\(error)")
            }
            made += 1
        }
        return made
    }
}
