import Foundation
import Hummingbird
import HummingbirdTLS
import NIOCore
import NIOSSL
import ServiceLifecycle
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

/// A key request (ETSI GS QKD 014 V1.1.1, 6.2), from the GET query or the POST body; every
/// field optional.
public struct KMEKeyRequest: Equatable, Sendable {
    public var number: Int?
    public var size: Int?
    public var additionalSlaves: [String]
    /// Names of the `extension_mandatory` parameters.
    public var mandatoryExtensions: [String]
    /// The string values of the `extension_mandatory` and `extension_optional` parameters, by
    /// name (`qkdnet_key_policy`), and which of them were optional.
    public var extensionValues: [String: String]
    public var optionalExtensions: [String]

    public init(number: Int? = nil, size: Int? = nil, additionalSlaves: [String] = [], mandatoryExtensions: [String] = [],
                extensionValues: [String: String] = [:], optionalExtensions: [String] = []) {
        self.number = number
        self.size = size
        self.additionalSlaves = additionalSlaves
        self.mandatoryExtensions = mandatoryExtensions
        self.extensionValues = extensionValues
        self.optionalExtensions = optionalExtensions
    }
}

/// One delivered key: its ID and its bytes.
public struct KMEKey: Equatable, Sendable {
    public var id: String
    public var bytes: [UInt8]

    public init(id: String, bytes: [UInt8]) {
        self.id = id
        self.bytes = bytes
    }
}

/// What a KME does; the node implements it. Errors carry the spec's status and message.
public protocol KeyManagementService: Sendable {
    /// Status of the key supply from the calling (master) SAE to `slave`.
    func status(caller: String, slave: String) async throws(KMEError) -> KMEStatus
    /// New keys shared with `slave`, for the calling master SAE ("Get key").
    func encKeys(caller: String, slave: String, request: KMEKeyRequest) async throws(KMEError) -> [KMEKey]
    /// The keys `ids` that `master` took for the calling slave SAE ("Get key with key IDs").
    func decKeys(caller: String, master: String, ids: [String]) async throws(KMEError) -> [KMEKey]
}

/// A request context that knows who is calling: the KME's routes need nothing else of it.
public protocol KMECallerContext: RequestContext {
    /// The calling SAE's ID (401 if the caller cannot be identified).
    func callerSAE() async throws(KMEError) -> String
}

/// The served context: it keeps the connection, whose client certificate names the caller.
public struct KMERequestContext: KMECallerContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The common name of this connection's client certificate.
    public func callerSAE() async throws(KMEError) -> String {
        try await KMEServer.callerSAE(channel)
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

    /// The KME as a service (swift-service-lifecycle): it serves from when its group runs it
    /// until the group shuts it down gracefully (requests in flight are answered first) or is
    /// cancelled; `onRunning` gets the bound port. Throws if the certificates cannot be read.
    public static func service(paths: Paths, port: Int = 0, service: some KeyManagementService,
                               onRunning: @escaping @Sendable (Int) -> Void) throws -> some Service {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(paths.certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: paths.key, format: .pem)))
        tls.trustRoots = .file(paths.ca)
        tls.certificateVerification = .noHostnameVerification
        tls.minimumTLSVersion = .tlsv12
        let router = router(service: service, context: KMERequestContext.self)
        let app = Application(router: router, server: try .tls(.http1(), tlsConfiguration: tls),
                              configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "QKDNet KME"),
                              onServerRunning: { channel in onRunning(channel.localAddress?.port ?? 0) })
        return app
    }

    /// The five routes of ETSI GS QKD 014 V1.1.1 (6.1-6.3, GET and POST forms) over `service`,
    /// in any context that names the caller: the served one reads the client certificate; a
    /// test's names the caller itself (the routes run without sockets).
    public static func router<Context: KMECallerContext>(service: some KeyManagementService, context: Context.Type) -> Router<Context> {
        let router = Router(context: Context.self)
        router.get("/api/v1/keys/:sae/status") { _, context in
            await respond { () async throws(KMEError) -> Response in
                let caller = try await context.callerSAE()
                let slave = try parameter("sae", context)
                return try encode(try await service.status(caller: caller, slave: slave))
            }
        }
        router.get("/api/v1/keys/:sae/enc_keys") { request, context in
            await respond { () async throws(KMEError) -> Response in
                let caller = try await context.callerSAE()
                let slave = try parameter("sae", context)
                let query = try keyRequest(query: request.uri.queryParameters)
                return container(try await service.encKeys(caller: caller, slave: slave, request: query))
            }
        }
        router.post("/api/v1/keys/:sae/enc_keys") { request, context in
            await respond { () async throws(KMEError) -> Response in
                let caller = try await context.callerSAE()
                let slave = try parameter("sae", context)
                let body = try keyRequest(body: try await object(request))
                return container(try await service.encKeys(caller: caller, slave: slave, request: body))
            }
        }
        router.get("/api/v1/keys/:sae/dec_keys") { request, context in
            await respond { () async throws(KMEError) -> Response in
                let caller = try await context.callerSAE()
                let master = try parameter("sae", context)
                guard let id = request.uri.queryParameters["key_ID"].map(String.init), !id.isEmpty else {
                    throw KMEError(.badRequest, "dec_keys: the GET form needs ?key_ID=<uuid>")
                }
                return container(try await service.decKeys(caller: caller, master: master, ids: [id]))
            }
        }
        router.post("/api/v1/keys/:sae/dec_keys") { request, context in
            await respond { () async throws(KMEError) -> Response in
                let caller = try await context.callerSAE()
                let master = try parameter("sae", context)
                let ids = try keyIDs(body: try await object(request))
                return container(try await service.decKeys(caller: caller, master: master, ids: ids))
            }
        }
        return router
    }

    /// The caller's SAE ID: the common name of the client certificate of this connection.
    static func callerSAE(_ channel: any Channel) async throws(KMEError) -> String {
        let der: [UInt8]?
        do {
            der = try await channel.eventLoop.flatSubmit {
                channel.pipeline.handler(type: NIOSSLServerHandler.self).flatMapThrowing { try $0.peerCertificate?.toDERBytes() }
            }.get()
        } catch {
            throw KMEError(.unauthorized, "the client certificate cannot be read")
        }
        guard let der else { throw KMEError(.unauthorized, "no client certificate") }
        return try saeID(certificate: der)
    }

    /// The SAE ID a client certificate (DER) names: its common name. The certificate must be
    /// an SAE's: extended key usage clientAuth and not serverAuth (RFC 5280 §4.2.1.12). The TLS
    /// handshake already refuses a certificate without clientAuth; this also refuses one that
    /// claims both (as KME certificates of earlier run directories did), so that a KME's
    /// certificate, signed by the same CA, never calls as an SAE.
    public static func saeID(certificate der: [UInt8]) throws(KMEError) -> String {
        do {
            let certificate = try Certificate(derEncoded: der)
            guard let usage = try certificate.extensions.extendedKeyUsage, usage.contains(.clientAuth), !usage.contains(.serverAuth) else {
                throw KMEError(.unauthorized, "the client certificate is not an SAE certificate (extended key usage must be clientAuth only)")
            }
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

    static func parameter(_ name: String, _ context: some RequestContext) throws(KMEError) -> String {
        guard let value = context.parameters.get(name), !value.isEmpty else { throw KMEError(.badRequest, "missing \(name) in the path") }
        return value.removingPercentEncoding ?? value
    }

    /// The request body as a JSON object (an empty body is `{}`).
    static func object(_ request: Request) async throws(KMEError) -> [String: JSONValue] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: 1 << 20)
        } catch {
            throw KMEError(.badRequest, "request body unreadable or larger than 1 MiB")
        }
        guard buffer.readableBytes > 0 else { return [:] }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer.readableBytesView)) else {
            throw KMEError(.badRequest, "malformed JSON in the request body")
        }
        guard case .object(let object) = value else { throw KMEError(.badRequest, "the request body must be a JSON object") }
        return object
    }

    /// An integer field of a JSON object or query (a JSON number with no fraction, or digits).
    static func integer(_ value: JSONValue?, _ name: String) throws(KMEError) -> Int? {
        switch value {
        case nil, .null?: return nil
        case .integer(let n)?: return n
        default: throw KMEError(.badRequest, "\(name) must be an integer")
        }
    }

    static func integer(query text: Substring?, _ name: String) throws(KMEError) -> Int? {
        guard let text else { return nil }
        guard let n = Int(text) else { throw KMEError(.badRequest, "\(name) must be an integer, got '\(text)'") }
        return n
    }

    static func keyRequest(query: Parameters) throws(KMEError) -> KMEKeyRequest {
        KMEKeyRequest(number: try integer(query: query["number"], "number"), size: try integer(query: query["size"], "size"))
    }

    static func keyRequest(body: [String: JSONValue]) throws(KMEError) -> KMEKeyRequest {
        var request = KMEKeyRequest(number: try integer(body["number"], "number"), size: try integer(body["size"], "size"))
        switch body["additional_slave_SAE_IDs"] {
        case nil, .null?: break
        case .array(let list)?:
            for item in list {
                guard case .string(let id) = item else { throw KMEError(.badRequest, "additional_slave_SAE_IDs must be an array of strings") }
                request.additionalSlaves.append(id)
            }
        default: throw KMEError(.badRequest, "additional_slave_SAE_IDs must be an array of strings")
        }
        for (key, mandatory) in [("extension_mandatory", true), ("extension_optional", false)] {
            switch body[key] {
            case nil, .null?: break
            case .array(let list)?:
                for item in list {
                    guard case .object(let fields) = item else { throw KMEError(.badRequest, "\(key) must be an array of objects") }
                    if mandatory { request.mandatoryExtensions += fields.keys.sorted() } else { request.optionalExtensions += fields.keys.sorted() }
                    for (name, value) in fields { if case .string(let text) = value { request.extensionValues[name] = text } }
                }
            default: throw KMEError(.badRequest, "\(key) must be an array of objects")
            }
        }
        return request
    }

    static func keyIDs(body: [String: JSONValue]) throws(KMEError) -> [String] {
        let usage = "dec_keys: the body must be {\"key_IDs\": [{\"key_ID\": \"<uuid>\"}, ...]}"
        guard case .array(let list)? = body["key_IDs"], !list.isEmpty else { throw KMEError(.badRequest, usage) }
        var ids: [String] = []
        for entry in list {
            guard case .object(let fields) = entry, case .string(let id)? = fields["key_ID"] else { throw KMEError(.badRequest, usage) }
            ids.append(id)
        }
        return ids
    }

    /// `{"keys": [{"key_ID": ..., "key": <base64>}]}`.
    static func container(_ keys: [KMEKey]) -> Response {
        var text = "{\"keys\":["
        for (i, k) in keys.enumerated() {
            if i > 0 { text += "," }
            text += "{\"key_ID\":\"\(k.id)\",\"key\":\"\(Data(k.bytes).base64EncodedString())\"}"
        }
        text += "]}"
        return json(.ok, Data(text.utf8))
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
    /// How long a 503 waits before it is sent. A 503 says "not now" (a bound reached, no key
    /// yet); a client that retries at once is slowed to a few requests per second per
    /// connection instead of spending the KME's CPU on refusals, so one hostile SAE cannot
    /// crowd out the others (`make bench`: kme.abuse_victim_enc_keys_ms). Nothing is held
    /// meanwhile but the suspended request.
    public static let unavailableHold: Duration = .milliseconds(100)

    static func respond(_ body: () async throws(KMEError) -> Response) async -> Response {
        do {
            return try await body()
        } catch {
            if error.status == .serviceUnavailable { try? await Task.sleep(for: unavailableHold) }
            let message = (try? JSONEncoder().encode(["message": error.message])) ?? Data("{}".utf8)
            return json(error.status, message)
        }
    }
}

/// Any JSON value, for request bodies whose fields may hold anything (unknown fields are
/// ignored; known ones are checked by type).
enum JSONValue: Decodable {
    case null, bool(Bool), integer(Int), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Int.self) {
            self = .integer(n)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }
}
