import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// A client of one KME's ETSI GS QKD 014 interface (V1.1.1, 2019-02): `status`, `enc_keys`
/// and `dec_keys` over HTTPS with mutual TLS, the calling SAE named by its client certificate
/// (clause 4.3). The spec's error statuses (400, 401, 503: clause 5.1) come back as
/// `ETSI014Error` with the KME's `message`; a 503 is retried with exponential backoff as
/// `retry` says, since it means "not now" (clause 5.3: the KME holds too few keys or is busy).
/// Key bits are returned to the caller and never logged or put into an error.
///
/// One client holds one HTTP connection pool; `shutdown()` it when done.
public final class ETSI014Client: Sendable {
    /// When and how often a 503 is tried again.
    public struct RetryPolicy: Sendable {
        /// Attempts in all (1: no retry).
        public var attempts: Int
        public var initialDelay: Duration
        public var maximumDelay: Duration

        public init(attempts: Int = 6, initialDelay: Duration = .milliseconds(200), maximumDelay: Duration = .seconds(5)) {
            self.attempts = max(1, attempts)
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
        }

        /// The delay before attempt `n + 1` (n ≥ 1): doubling from `initialDelay`, at most
        /// `maximumDelay`.
        public func delay(after n: Int) -> Duration {
            var d = initialDelay
            for _ in 1..<max(1, n) where d < maximumDelay { d *= 2 }
            return min(d, maximumDelay)
        }
    }

    public let kmeURL: String
    public let timeout: Duration
    public let retry: RetryPolicy
    private let http: HTTPClient

    /// `kmeURL`: `https://host:port` of the KME; `caPath`: the PEM of the network's CA (the
    /// KME's certificate must chain to it and name the host); `certificatePath` / `keyPath`:
    /// the SAE's client certificate and key (PEM). Throws `.configuration` naming the file that
    /// cannot be read.
    public init(kmeURL: String, caPath: String, certificatePath: String, keyPath: String,
                timeout: Duration = .seconds(20), retry: RetryPolicy = RetryPolicy()) throws(ETSI014Error) {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        do {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caPath))
        } catch {
            throw ETSI014Error(.configuration, "cannot read the CA certificate '\(caPath)': \(error)")
        }
        do {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
        } catch {
            throw ETSI014Error(.configuration, "cannot read the SAE certificate '\(certificatePath)': \(error)")
        }
        do {
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
        } catch {
            throw ETSI014Error(.configuration, "cannot read the SAE key '\(keyPath)': \(error)")
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(5), read: TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
        self.kmeURL = kmeURL.hasSuffix("/") ? String(kmeURL.dropLast()) : kmeURL
        self.timeout = timeout
        self.retry = retry
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Closes the connections.
    public func shutdown() async {
        try? await http.shutdown()
    }

    // MARK: The three calls (ETSI GS QKD 014 clause 5)

    /// `GET /api/v1/keys/{slave}/status` (clause 5.2).
    public func status(slave: String) async throws(ETSI014Error) -> ETSI014Status {
        let body = try await call(.GET, "/api/v1/keys/\(try Self.pathSegment(slave))/status", body: nil)
        return try Self.decode(ETSI014Status.self, from: body)
    }

    /// `POST /api/v1/keys/{slave}/enc_keys` with a key request of `number` keys of `size` bits
    /// (nil: the KME's default) (clause 5.3).
    public func encKeys(slave: String, number: Int = 1, size: Int? = nil) async throws(ETSI014Error) -> [ETSI014Key] {
        var request: [String: Int] = ["number": number]
        if let size { request["size"] = size }
        let json = (try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])) ?? Data()
        let body = try await call(.POST, "/api/v1/keys/\(try Self.pathSegment(slave))/enc_keys", body: Array(json))
        return try Self.keys(from: body)
    }

    /// `POST /api/v1/keys/{master}/dec_keys` with the key IDs the master's SAE was given
    /// (clause 5.4).
    public func decKeys(master: String, keyIDs: [String]) async throws(ETSI014Error) -> [ETSI014Key] {
        let request = ["key_IDs": keyIDs.map { ["key_ID": $0] }]
        let json = (try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])) ?? Data()
        let body = try await call(.POST, "/api/v1/keys/\(try Self.pathSegment(master))/dec_keys", body: Array(json))
        return try Self.keys(from: body)
    }

    // MARK: Transport

    private func call(_ method: HTTPMethod, _ path: String, body: [UInt8]?) async throws(ETSI014Error) -> [UInt8] {
        var attempt = 1
        while true {
            do throws(ETSI014Error) {
                return try await once(method, path, body: body)
            } catch {
                guard error.kind == .serviceUnavailable, attempt < retry.attempts else { throw error }
                try? await Task.sleep(for: retry.delay(after: attempt))
                attempt += 1
            }
        }
    }

    private func once(_ method: HTTPMethod, _ path: String, body: [UInt8]?) async throws(ETSI014Error) -> [UInt8] {
        var request = HTTPClientRequest(url: kmeURL + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(timeout.components.seconds))
            bytes = try await response.body.collect(upTo: Self.maximumResponseBytes)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            throw ETSI014Error(.timeout, "\(method.rawValue) \(path): no answer from \(kmeURL) within \(timeout)")
        } catch {
            throw ETSI014Error(.transport, "\(method.rawValue) \(path) to \(kmeURL): \(error)")
        }
        let data = Array(bytes.readableBytesView)
        let status = Int(response.status.code)
        guard status == 200 else {
            let message = (try? JSONSerialization.jsonObject(with: Data(data)) as? [String: Any])?["message"] as? String
            throw ETSI014Error(ETSI014Error.Kind(status: status), message ?? "HTTP \(status) without a message", status: status)
        }
        return data
    }

    /// A key container of up to 128 keys of 8,192 bits is under 2 MB of JSON.
    static let maximumResponseBytes = 4 << 20

    /// An SAE ID as one path segment (ETSI 014 IDs are plain names; anything else is refused
    /// here rather than sent).
    static func pathSegment(_ id: String) throws(ETSI014Error) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        guard !id.isEmpty, id.unicodeScalars.allSatisfy({ allowed.contains($0) }) else {
            throw ETSI014Error(.badRequest, "SAE ID '\(id.prefix(64))' is not a plain name (letters, digits, - . _ ~)")
        }
        return id
    }

    static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8]) throws(ETSI014Error) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw ETSI014Error(.malformedResponse, "the KME's answer is not a \(T.self): \(error)")
        }
    }

    /// The keys of a key container (clause 6.3); a key that is not base64 is malformed.
    static func keys(from body: [UInt8]) throws(ETSI014Error) -> [ETSI014Key] {
        let container = try decode(KeyContainer.self, from: body)
        var out: [ETSI014Key] = []
        for k in container.keys {
            guard let bits = Data(base64Encoded: k.key) else {
                throw ETSI014Error(.malformedResponse, "key \(k.key_ID) is not base64")
            }
            out.append(ETSI014Key(keyID: k.key_ID, key: Array(bits)))
        }
        return out
    }

    private struct KeyContainer: Decodable {
        struct Entry: Decodable {
            var key_ID: String
            var key: String
        }
        var keys: [Entry]
    }
}

/// One key of a key container: its ID (a UUID) and its bits. `description` never shows the bits.
public struct ETSI014Key: Sendable, Equatable, CustomStringConvertible {
    public var keyID: String
    public var key: [UInt8]

    public init(keyID: String, key: [UInt8]) {
        self.keyID = keyID
        self.key = key
    }

    public var description: String { "key \(keyID) (\(key.count * 8) bits)" }
}

/// The status of a KME's supply to one slave SAE (clause 6.1).
public struct ETSI014Status: Sendable, Equatable, Decodable {
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

    enum CodingKeys: String, CodingKey {
        case sourceKMEID = "source_KME_ID", targetKMEID = "target_KME_ID", masterSAEID = "master_SAE_ID", slaveSAEID = "slave_SAE_ID"
        case keySize = "key_size", storedKeyCount = "stored_key_count", maxKeyCount = "max_key_count"
        case maxKeyPerRequest = "max_key_per_request", maxKeySize = "max_key_size", minKeySize = "min_key_size"
        case maxSAEIDCount = "max_SAE_ID_count"
    }
}

/// What went wrong with a call: the spec's statuses as kinds, and the KME's message.
public struct ETSI014Error: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// 400: the request is wrong (clause 5: bad parameters, unknown SAE, key not found).
        case badRequest
        /// 401: the caller is not an SAE of this KME.
        case unauthorized
        /// 503: not now (too few keys, too many requests in flight); retried as the policy says.
        case serviceUnavailable
        /// Another HTTP status.
        case unexpectedStatus
        /// No answer in time.
        case timeout
        /// The connection or the TLS handshake failed.
        case transport
        /// A 200 whose body is not what the spec says.
        case malformedResponse
        /// A certificate or key file of the client cannot be read.
        case configuration

        init(status: Int) {
            switch status {
            case 400: self = .badRequest
            case 401: self = .unauthorized
            case 503: self = .serviceUnavailable
            default: self = .unexpectedStatus
            }
        }
    }

    public var kind: Kind
    public var message: String
    /// The HTTP status, for an answer that had one.
    public var status: Int?

    public init(_ kind: Kind, _ message: String, status: Int? = nil) {
        self.kind = kind
        self.message = message
        self.status = status
    }

    public var description: String { status.map { "\($0): \(message)" } ?? message }
}
