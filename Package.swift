// swift-tools-version:6.0
// QKDNet: a trusted-node QKD network emulator. See docs/architecture.md for the layering.
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]
/// The physics and post-processing hot paths are optimised in debug builds too, so that the
/// statistical tests (billions of emulated pulses) run in seconds under `swift test`.
let hot: [SwiftSetting] = strict + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "QKDNet",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qkd-node", targets: ["qkd-node"]),
        .executable(name: "qkdctl", targets: ["qkdctl"]),
        .executable(name: "qkd-bench", targets: ["qkd-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // Layer 0: identifiers, seeded PRNG streams, clocks. No dependencies.
        .target(name: "QKDCore", swiftSettings: hot),
        // Layer 1: topology model, YAML parsing and validation.
        .target(
            name: "QKDTopology",
            dependencies: ["QKDCore", "QKDPhysics", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        // Layer 1: source, channel, detector models and analytic key-rate formulas.
        .target(name: "QKDPhysics", dependencies: ["QKDCore"], swiftSettings: hot),
        // Layer 1: sifting, estimation, error correction, privacy amplification, as instances.
        .target(name: "QKDPostProcessing", dependencies: ["QKDCore", "QKDPhysics", "QKDWire", "QKDKeyPool", "CQKDKernels"], swiftSettings: hot),
        // Layer 2½: eavesdroppers on a link's fibre and public channel, as instances.
        .target(name: "QKDAttacks", dependencies: ["QKDCore", "QKDPhysics", "QKDTopology", "QKDWire"], swiftSettings: hot),
        // Pure compute kernels in C (GF(2) polynomial multiplication for Toeplitz hashing).
        .target(name: "CQKDKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Layer 1: key pool state machine (reserve / consume / expire, capacity, auth reserve).
        .target(name: "QKDKeyPool", dependencies: ["QKDCore"], swiftSettings: strict),
        // Layer 1: link-state view, path selection and the hop-by-hop XOR relay, as instances.
        .target(name: "QKDRouting", dependencies: ["QKDCore", "QKDTopology", "QKDWire", "QKDKeyPool"], swiftSettings: strict),
        // Layer 2: versioned envelope and control messages.
        .target(name: "QKDWire", dependencies: ["QKDCore"], swiftSettings: hot),
        // Layer 3: libzmq shim and transports.
        .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .target(name: "CQKDSystem"),
        .target(
            name: "QKDTransport",
            dependencies: ["QKDCore", "QKDTopology", "QKDWire", "CZeroMQ"],
            swiftSettings: strict),
        // The SQLite C API (the same libsqlite3 GRDB uses), for the store's bulk read at start-up.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // Layer 3: key pools in SQLite (GRDB, WAL), keys sealed with the node's key-encryption key.
        .target(
            name: "QKDStore",
            dependencies: [
                "QKDCore", "QKDKeyPool", "CSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        // Layer 3: the ETSI GS QKD 014 key delivery API (HTTPS, mutual TLS) and the port the node
        // implements (KeyManagementService): QKDNode depends on it.
        .target(
            name: "QKDAPI",
            dependencies: [
                "QKDCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // Layer 3: an ETSI GS QKD 014 client for applications (HTTPS with mutual TLS, the spec's
        // errors as typed errors, timeouts, retries with backoff on 503); depends on no QKDNet target.
        .target(
            name: "QKDClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
        // Hybrid keys (issue 19): the HKDF-SHA-256 combiner of a QKD key and an ML-KEM-768
        // secret (NIST SP 800-56C Rev. 2), and the KEM exchange between two KMEs.
        .target(
            name: "QKDHybrid",
            dependencies: ["QKDCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // Applications on the ETSI 014 API: files sealed with QKD keys (one-time pad, one-time
        // HMAC key) through an untrusted mailbox directory.
        .target(
            name: "QKDApps",
            dependencies: ["QKDClient", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // Layer 3 (pure): one link end (liveness, faults, the quantum engine, pool agreement)
        // and a node's whole quantum layer, as instances (optimised in debug too: every frame passes here).
        .target(
            name: "QKDLink",
            dependencies: ["QKDCore", "QKDTopology", "QKDWire", "QKDPhysics", "QKDPostProcessing", "QKDKeyPool"],
            swiftSettings: hot),
        // Layer 4 (pure): what a node decides (frames validated, links, control, faults), as an instance.
        .target(name: "QKDNodeCore", dependencies: ["QKDCore", "QKDTopology", "QKDWire", "QKDLink"], swiftSettings: strict),
        // Layer 5: the node shell.
        .target(
            name: "QKDNode",
            dependencies: [
                "QKDCore", "QKDTopology", "QKDWire", "QKDTransport", "CQKDSystem", "QKDPhysics", "QKDPostProcessing",
                "QKDKeyPool", "QKDStore", "QKDRouting", "QKDAPI", "QKDLink", "QKDNodeCore", "QKDHybrid",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        // Operations: run directories, spawning and stopping node processes, querying them.
        .target(
            name: "QKDLaunch",
            dependencies: [
                "QKDCore", "QKDTopology", "QKDWire", "QKDTransport", "CQKDSystem", "QKDAttacks", "QKDKeyPool", "QKDStore", "QKDHybrid",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "qkd-node",
            dependencies: [
                "QKDNode", "QKDNodeCore", "QKDTopology", "CQKDSystem", "QKDAPI", "QKDCore", "QKDStore", "QKDTransport", "QKDKeyPool", "QKDHybrid",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "qkd-eve",
            dependencies: [
                "QKDAttacks", "QKDCore", "QKDTopology", "QKDTransport", "QKDWire", "CQKDSystem", "CZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "qkdctl",
            dependencies: [
                "QKDLaunch", "QKDAttacks", "QKDTopology", "QKDWire", "QKDCore", "QKDPhysics", "QKDPostProcessing", "QKDStore", "QKDLink",
                "QKDApps", "QKDClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "qkd-bench",
            dependencies: [
                "QKDLaunch", "QKDTopology", "QKDWire", "QKDCore", "QKDPhysics", "QKDPostProcessing", "QKDKeyPool", "QKDStore", "QKDHybrid",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
        // Test support: shared topologies, a manual clock, `eventually`, log capture, and the
        // deterministic in-process network.
        .target(
            name: "QKDTestKit",
            dependencies: ["QKDCore", "QKDTopology", "QKDWire", "QKDTransport", "QKDLink", "QKDNodeCore", "QKDNode", "QKDAttacks",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "QKDCoreTests", dependencies: ["QKDCore"]),
        .testTarget(name: "QKDAttacksTests", dependencies: ["QKDAttacks", "QKDCore", "QKDPhysics", "QKDWire", "QKDPostProcessing"]),
        .testTarget(name: "QKDKeyPoolTests", dependencies: ["QKDKeyPool", "QKDCore"]),
        .testTarget(
            name: "QKDLaunchTests",
            dependencies: [
                "QKDLaunch", "QKDTopology", "QKDAPI",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(name: "QKDRoutingTests", dependencies: ["QKDRouting", "QKDKeyPool", "QKDCore", "QKDTopology", "QKDWire"]),
        .testTarget(name: "QKDAppsTests", dependencies: ["QKDApps", "QKDClient"]),
        .testTarget(name: "QKDHybridTests", dependencies: ["QKDHybrid", "QKDTopology", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "QKDStoreTests", dependencies: ["QKDStore", "QKDKeyPool", "QKDCore", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "QKDPostProcessingTests", dependencies: ["QKDPostProcessing", "QKDCore", "QKDPhysics", "QKDWire", "QKDKeyPool"]),
        .testTarget(name: "QKDPhysicsTests", dependencies: ["QKDPhysics", "QKDCore", "QKDPostProcessing", "QKDWire", "QKDKeyPool"]),
        .testTarget(name: "QKDTopologyTests", dependencies: ["QKDTopology"]),
        .testTarget(name: "QKDWireTests", dependencies: ["QKDWire"]),
        .testTarget(name: "QKDTransportTests", dependencies: ["QKDTransport", "QKDWire", "QKDTopology", "CZeroMQ"]),
        .testTarget(
            name: "QKDNodeTests",
            dependencies: ["QKDTestKit", "QKDNode", "QKDNodeCore", "QKDLink", "QKDTransport", "QKDTopology", "QKDWire", "QKDKeyPool", "QKDPostProcessing",
                           "QKDAPI", "QKDCore", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "Logging", package: "swift-log"), "QKDHybrid"]),
        .testTarget(
            name: "QKDLinkTests",
            dependencies: ["QKDTestKit", "QKDLink", "QKDNodeCore", "QKDCore", "QKDTopology", "QKDWire", "QKDKeyPool", "QKDPostProcessing"]),
        .testTarget(
            name: "QKDIntegrationTests",
            dependencies: ["QKDTestKit", "QKDLaunch", "QKDTopology", "QKDWire", "QKDPhysics", "QKDPostProcessing", "QKDAttacks", "QKDLink",
                           "QKDClient"]),
    ]
)
