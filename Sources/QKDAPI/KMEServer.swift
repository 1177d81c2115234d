import Foundation
import Hummingbird
import HummingbirdTLS
import NIOCore
import NIOSSL
import X509

/// An ETSI GS QKD 014 error: the HTTP status (400, 401 or 503, the only ones the standard
/// defines) and the message, sent as `{"message": ...}`.
public struct KMEError: Error, Sendable {
    public let status: HTTPResponse.Status
    public let message: String

    public init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// The body of `GET /api/v1/keys/{slave_SAE_ID}/status` (ETSI GS QKD 014 V1.1.1, 6.1).
public struct KMEStatus: Codable, Sendable, Equatable {
    public var sourceKMEID: String
    public var targetKMEID: String
    public var masterSAEID: String
    public var slaveSAEID: String
    public var keySize: Int
    public var storedKeyCount: Int
    public var maxKeyCount: Int
    public var maxKeyPerRequest: Int
    public var maxKeySize: Int
    public var minKeySize: Int
    public var maxSAEIDCount: Int

    public init(sourceKMEID: String, targetKMEID: String, masterSAEID: String, slaveSAEID: String, keySize: Int,
                storedKeyCount: Int, maxKeyCount: Int, maxKeyPerRequest: Int, maxKeySize: Int, minKeySize: Int) {
        self.sourceKMEID = sourceKMEID
        self.targetKMEID = targetKMEID
        self.masterSAEID = masterSAEID
        self.slaveSAEID = slaveSAEID
        self.keySize = keySize
        self.storedKeyCount = storedKeyCount
        self.maxKeyCount = maxKeyCount
        self.maxKeyPerRequest = maxKeyPerRequest
        self.maxKeySize = maxKeySize
        self.minKeySize = minKeySize
        maxSAEIDCount = 0
    }

    enum CodingKeys: String, CodingKey {
        case sourceKMEID = "source_KME_ID", targetKMEID = "target_KME_ID", masterSAEID = "master_SAE_ID"
        case slaveSAEID = "slave_SAE_ID", keySize = "key_size", storedKeyCount = "stored_key_count"
        case maxKeyCount = "max_key_count", maxKeyPerRequest = "max_key_per_request", maxKeySize = "max_key_size"
        case minKeySize = "min_key_size", maxSAEIDCount = "max_SAE_ID_count"
    }
}

/// What a KME does; the node implements it.
public protocol KeyManagementService: Sendable {
    /// Status of the key supply from the calling (master) SAE to `slave`.
    func status(caller: String, slave: String) async throws(KMEError) -> KMEStatus
}

/// A request context that keeps the connection, for the client certificate.
public struct KMERequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The ETSI GS QKD 014 server of one node: HTTPS with mutual TLS on 127.0.0.1. The calling SAE
/// is the common name of its client certificate, which must chain to the network's CA (the
/// TLS handshake refuses anything else).
public enum KMEServer {
    public struct Paths: Sendable {
        public var ca: String
        public var certificate: String
        public var key: String

        public init(ca: String, certificate: String, key: String) {
            self.ca = ca
            self.certificate = certificate
            self.key = key
        }
    }

    /// Serves until the task is cancelled; `onRunning` gets the bound port.
    public static func run(paths: Paths, port: Int = 0, service: some KeyManagementService,
                           onRunning: @escaping @Sendable (Int) -> Void) async throws {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(paths.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: paths.key, format: .pem)))
        tls.trustRoots = .file(paths.ca)
        tls.certificateVerification = .noHostnameVerification
        tls.minimumTLSVersion = .tlsv12
        let router = Router(context: KMERequestContext.self)
        router.get("/api/v1/keys/:slave/status") { _, context in
            await respond { () async throws(KMEError) -> Response in
                let caller = try await callerSAE(context.channel)
                let slave = try parameter("slave", context)
                return try encode(try await service.status(caller: caller, slave: slave))
            }
        }
        let app = Application(router: router, server: try .tls(.http1(), tlsConfiguration: tls),
                              configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "QKDNet KME"),
                              onServerRunning: { channel in onRunning(channel.localAddress?.port ?? 0) })
        try await app.runService(gracefulShutdownSignals: [])
    }

    /// The caller's SAE ID: the common name of the client certificate of this connection.
    static func callerSAE(_ channel: any Channel) async throws(KMEError) -> String {
        do {
            let der = try await channel.eventLoop.flatSubmit {
                channel.pipeline.handler(type: NIOSSLServerHandler.self).flatMapThrowing { try $0.peerCertificate?.toDERBytes() }
            }.get()
            guard let der else { throw KMEError(.unauthorized, "no client certificate") }
            let certificate = try Certificate(derEncoded: der)
            for rdn in certificate.subject {
                for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                    return String(describing: attribute.value)
                }
            }
            throw KMEError(.unauthorized, "the client certificate names no SAE (no common name)")
        } catch let error as KMEError {
            throw error
        } catch {
            throw KMEError(.unauthorized, "the client certificate cannot be read")
        }
    }

    static func parameter(_ name: String, _ context: KMERequestContext) throws(KMEError) -> String {
        guard let value = context.parameters.get(name), !value.isEmpty else { throw KMEError(.badRequest, "missing \(name) in the path") }
        return value.removingPercentEncoding ?? value
    }

    static func encode(_ value: some Encodable) throws(KMEError) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { throw KMEError(.serviceUnavailable, "response could not be encoded") }
        return json(.ok, data)
    }

    static func json(_ status: HTTPResponse.Status, _ data: Data) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Runs a handler; a `KMEError` becomes its status with `{"message": ...}`.
    static func respond(_ body: () async throws(KMEError) -> Response) async -> Response {
        do {
            return try await body()
        } catch {
            let message = (try? JSONEncoder().encode(["message": error.message])) ?? Data("{}".utf8)
            return json(error.status, message)
        }
    }
}
