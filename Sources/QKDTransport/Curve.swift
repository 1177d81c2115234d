import CZeroMQ
import Foundation
import QKDCore

/// A long-term CurveZMQ key pair (RFC 26, CurveZMQ; ZMTP 3 CURVE mechanism, RFC 25):
/// Curve25519 keys in Z85 text (40 characters each, ZeroMQ RFC 32). Every peer and control
/// connection of a node is a CURVE session: the client proves it holds the secret key of the
/// public key the server's ZAP handler admits, and every frame is encrypted and authenticated
/// (crypto_box, XSalsa20-Poly1305) under short-term keys of that session.
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: String
    public let secretKey: String

    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Whether this libzmq was built with CURVE (Debian's is, with libsodium).
    public static var isAvailable: Bool { zmq_has("curve") != 0 }

    /// A fresh key pair from libzmq (libsodium's randombytes: the OS CSPRNG).
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: z85Text(pub), secretKey: z85Text(sec))
    }

    /// Whether `text` is a Z85-encoded 32-byte key.
    public static func isKey(_ text: String) -> Bool {
        guard text.utf8.count == 40 else { return false }
        var raw = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&raw, text) != nil
    }

    /// Z85 text of a raw 32-byte key (as a ZAP request carries it).
    static func z85(_ raw: [UInt8]) -> String? {
        guard raw.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&text, raw, 32) != nil else { return nil }
        return z85Text(text)
    }

    /// The text of a NUL-terminated Z85 buffer filled by libzmq (Z85 is ASCII).
    private static func z85Text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A key of the run's CURVE key files that cannot be used: which file and why.
public struct CurveKeyError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String
    public var description: String { "CURVE key file '\(path)': \(reason)" }
}

/// Key files: one Z85 key and a newline; secret keys mode 0600.
public enum CurveKeyFile {
    public static func read(_ path: String) throws(CurveKeyError) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw CurveKeyError(path: path, reason: "missing or unreadable (qkdctl up makes the run's keys)")
        }
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard CurveKeyPair.isKey(key) else { throw CurveKeyError(path: path, reason: "not a 40-character Z85 key") }
        return key
    }

    /// The key pair whose public half is at `publicPath` and secret half at `secretPath`.
    public static func readPair(public publicPath: String, secret secretPath: String) throws(CurveKeyError) -> CurveKeyPair {
        CurveKeyPair(publicKey: try read(publicPath), secretKey: try read(secretPath))
    }

    public static func write(_ pair: CurveKeyPair, public publicPath: String, secret secretPath: String) throws(CurveKeyError) {
        try write(pair.publicKey, to: publicPath, mode: 0o644)
        try write(pair.secretKey, to: secretPath, mode: 0o600)
    }

    static func write(_ key: String, to path: String, mode: Int) throws(CurveKeyError) {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                   attributes: [.posixPermissions: 0o700])
            let temporary = path + ".tmp"
            try? fm.removeItem(atPath: temporary)
            guard fm.createFile(atPath: temporary, contents: Data((key + "\n").utf8), attributes: [.posixPermissions: mode]) else {
                throw CurveKeyError(path: path, reason: "cannot create")
            }
            if fm.fileExists(atPath: path) { try fm.removeItem(atPath: path) }
            try fm.moveItem(atPath: temporary, toPath: path)
        } catch let error as CurveKeyError {
            throw error
        } catch {
            throw CurveKeyError(path: path, reason: error.localizedDescription)
        }
    }
}

/// The ZAP handler (ZeroMQ RFC 27) of one context: it decides which CURVE public keys may
/// connect to the context's server sockets, per ZAP domain (`peer`, `control`), and names the
/// user each key is (a node id, `eve:LINK`, `control`). libzmq attaches that name to every
/// message of the connection (`User-Id`), so a frame's sender is the holder of the key, never
/// a routing id the client chose.
///
/// A peer-domain key not admitted yet is held, not refused, for `holdNs`: an interposer
/// connects to both ends of a link before the second end is told of it (the splice reaches the
/// two ends one after the other), and libzmq does not reconnect after a refused handshake.
/// Bound at `inproc://zeromq.zap.01` as a ROUTER (several handshakes may be pending at once).
public final class ZAPHandler {
    public static let peerDomain = "peer"
    public static let controlDomain = "control"

    /// A handshake refused: which domain, which key (public, never secret) and from where.
    public struct Refusal: Equatable, Sendable {
        public let domain: String
        public let key: String
        public let address: String
        public let reason: String
    }

    private struct Pending {
        let route: [UInt8]
        let requestID: [UInt8]
        let domain: String
        let key: String
        let address: String
        let deadlineNs: UInt64
    }

    private let socket: ZMQSocket
    private var admitted: [String: [String: String]] = [:]
    private var pending: [Pending] = []
    public let holdNs: UInt64

    public init(context: ZMQContext, holdNs: UInt64 = 10_000_000_000) throws(ZMQError) {
        socket = try ZMQSocket(context: context, kind: .router)
        try socket.bind("inproc://zeromq.zap.01")
        self.holdNs = holdNs
    }

    public var pollSocket: ZMQSocket { socket }

    /// Admits `key` in `domain` as `user` (replacing what that key was).
    public func admit(_ key: String, as user: String, in domain: String) {
        admitted[domain, default: [:]][key] = user
    }

    /// No new connection with `key` in `domain` from now on (open sessions stay: the caller
    /// closes its side, or the holder's process ends).
    public func revoke(_ key: String, in domain: String) {
        admitted[domain]?[key] = nil
    }

    /// Answers every waiting handshake request: admitted keys at once, unknown peer keys once
    /// admitted or refused at their deadline, anything else refused. Returns the refusals.
    public func handle(nowNs: UInt64 = monotonicNanoseconds()) -> [Refusal] {
        var refusals: [Refusal] = []
        for _ in 0..<64 {
            guard let (parts, truncated) = socket.receive(maxParts: 10) else { break }
            // [route][empty][version][request id][domain][address][identity][mechanism][key]
            guard !truncated, parts.count == 9, parts[1].isEmpty, parts[2] == Array("1.0".utf8) else {
                if let route = parts.first, parts.count > 3 { reply(route, parts[3], ok: false, user: "") }
                refusals.append(Refusal(domain: "?", key: "?", address: "?", reason: "malformed ZAP request"))
                continue
            }
            let domain = String(decoding: parts[4], as: UTF8.self)
            let address = String(decoding: parts[5], as: UTF8.self)
            let mechanism = String(decoding: parts[7], as: UTF8.self)
            guard mechanism == "CURVE", let key = CurveKeyPair.z85(parts[8]) else {
                reply(parts[0], parts[3], ok: false, user: "")
                refusals.append(Refusal(domain: domain, key: "-", address: address, reason: "mechanism \(mechanism), expected CURVE"))
                continue
            }
            if let user = admitted[domain]?[key] {
                reply(parts[0], parts[3], ok: true, user: user)
            } else if domain == ZAPHandler.peerDomain {
                pending.append(Pending(route: parts[0], requestID: parts[3], domain: domain, key: key, address: address,
                                       deadlineNs: nowNs &+ holdNs))
            } else {
                reply(parts[0], parts[3], ok: false, user: "")
                refusals.append(Refusal(domain: domain, key: key, address: address, reason: "key not admitted"))
            }
        }
        var still: [Pending] = []
        for p in pending {
            if let user = admitted[p.domain]?[p.key] {
                reply(p.route, p.requestID, ok: true, user: user)
            } else if nowNs >= p.deadlineNs {
                reply(p.route, p.requestID, ok: false, user: "")
                refusals.append(Refusal(domain: p.domain, key: p.key, address: p.address, reason: "key not admitted"))
            } else {
                still.append(p)
            }
        }
        pending = still
        return refusals
    }

    /// Handshakes waiting for their key to be admitted.
    public var holding: Int { pending.count }

    /// The earliest deadline of a held handshake (for the caller's poll timeout).
    public var nextDeadlineNs: UInt64? { pending.map(\.deadlineNs).min() }

    private func reply(_ route: [UInt8], _ requestID: [UInt8], ok: Bool, user: String) {
        socket.send([route, [], Array("1.0".utf8), requestID, Array((ok ? "200" : "400").utf8),
                     Array((ok ? "OK" : "key not admitted").utf8), Array(user.utf8), []])
    }

    public func close() { socket.close() }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension ZMQSocket {
    /// Makes this socket a CURVE server with `keys`, whose handshakes go to the ZAP handler
    /// under `domain`. Call before bind.
    public func makeCurveServer(_ keys: CurveKeyPair, domain: String) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVER, Int32(1))
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8))
        try setOption(ZMQ_ZAP_DOMAIN, bytes: Array(domain.utf8))
    }

    /// Makes this socket a CURVE client with `keys` of the server whose public key is
    /// `serverKey`. Call before connect.
    public func makeCurveClient(_ keys: CurveKeyPair, serverKey: String) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVERKEY, bytes: Array(serverKey.utf8))
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: Array(keys.publicKey.utf8))
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretKey.utf8))
    }
}
