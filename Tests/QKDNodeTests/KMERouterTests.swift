import Foundation
import Hummingbird
import Logging
import NIOCore
import QKDAPI
import QKDCore
import QKDKeyPool
import QKDNode
import QKDTestKit
import QKDTopology
import QKDWire
import Testing

/// Where a test request comes from: the caller it names stands for the common name of a
/// client certificate (nil: a connection without one).
struct CallerSource: RequestContextSource {
    var logger: Logger
    var caller: String?
}

/// The KME's routes in a context that names the caller itself: no TLS, no socket.
struct CallerContext: KMECallerContext {
    typealias Source = CallerSource
    var coreContext: CoreRequestContextStorage
    let caller: String?

    init(source: CallerSource) {
        coreContext = .init(source: source)
        caller = source.caller
    }

    func callerSAE() async throws(KMEError) -> String {
        guard let caller else { throw KMEError(.unauthorized, "no client certificate") }
        return caller
    }
}

/// One answer of the routes: the status and the body's text.
struct KMEAnswer: Sendable, CustomStringConvertible {
    var status: Int
    var body: String

    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] }
    var message: String { json?["message"] as? String ?? "" }
    /// (key_ID, key bytes) of a key container.
    var keys: [(id: String, bytes: [UInt8])] {
        (json?["keys"] as? [[String: Any]] ?? []).compactMap { entry in
            guard let id = entry["key_ID"] as? String, let text = entry["key"] as? String, let data = Data(base64Encoded: text) else { return nil }
            return (id, Array(data))
        }
    }
    var description: String { "\(status) \(body.prefix(300))" }
}

/// Calls the routes of `KMEServer.router` the way the HTTP server does, without one.
struct KMERoutes: Sendable {
    let responder: RouterResponder<CallerContext>

    init(_ service: some KeyManagementService) {
        responder = KMEServer.router(service: service, context: CallerContext.self).buildResponder()
    }

    func get(_ path: String, as caller: String?) async -> KMEAnswer {
        await call(.get, path, as: caller, body: nil)
    }

    func post(_ path: String, as caller: String?, _ body: String) async -> KMEAnswer {
        await call(.post, path, as: caller, body: ByteBuffer(string: body))
    }

    func call(_ method: HTTPRequest.Method, _ path: String, as caller: String?, body: ByteBuffer?) async -> KMEAnswer {
        let request = Request(head: HTTPRequest(method: method, scheme: "https", authority: "kme", path: path),
                              body: RequestBody(buffer: body ?? ByteBuffer()))
        let context = CallerContext(source: CallerSource(logger: Logger(label: "kme-test"), caller: caller))
        do {
            let response = try await responder.respond(to: request, context: context)
            let collector = BodyCollector()
            try await response.body.write(collector)
            return KMEAnswer(status: Int(response.status.code), body: String(buffer: collector.buffer))
        } catch {
            return KMEAnswer(status: -1, body: "the responder threw \(error)")
        }
    }

    /// Keeps the body a response writes (a class: the writer is consumed by value).
    final class BodyCollector: ResponseBodyWriter, @unchecked Sendable {
        var buffer = ByteBuffer()
        func write(_ buffer: ByteBuffer) async throws { self.buffer.writeImmutableBuffer(buffer) }
        func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

/// A key service that records what the routes asked and answers as told.
final class FakeKeyService: KeyManagementService, @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [String] = []
    private var lastRequest: KMEKeyRequest?
    private let failure: KMEError?
    private let keys: [KMEKey]

    init(failing failure: KMEError? = nil, keys: [KMEKey] = []) {
        self.failure = failure
        self.keys = keys
    }

    var recorded: [String] { lock.withLock { calls } }
    var request: KMEKeyRequest? { lock.withLock { lastRequest } }

    private func note(_ call: String, _ request: KMEKeyRequest? = nil) throws(KMEError) {
        lock.withLock {
            calls.append(call)
            if let request { lastRequest = request }
        }
        if let failure { throw failure }
    }

    func status(caller: String, slave: String) async throws(KMEError) -> KMEStatus {
        try note("status \(caller) \(slave)")
        return KMEStatus(sourceKMEID: "A", targetKMEID: "B", masterSAEID: caller, slaveSAEID: slave, keySize: 256, storedKeyCount: 7,
                         maxKeyCount: 100, maxKeyPerRequest: 128, maxKeySize: 8192, minKeySize: 8)
    }

    func encKeys(caller: String, slave: String, request: KMEKeyRequest) async throws(KMEError) -> [KMEKey] {
        try note("enc \(caller) \(slave)", request)
        return keys
    }

    func decKeys(caller: String, master: String, ids: [String]) async throws(KMEError) -> [KMEKey] {
        try note("dec \(caller) \(master) \(ids.joined(separator: ","))")
        return keys
    }
}

/// The KME's routes (ETSI GS QKD 014 V1.1.1, 6.1-6.3) without sockets: first what the
/// routes themselves refuse, against a fake key service; then every 400, 401 and 503 of the
/// node's key service, on a deterministic line-3 whose event loop relays the keys.
@Suite struct KMERouterTests {
    static let paths = ["/api/v1/keys/SAE-B/status", "/api/v1/keys/SAE-B/enc_keys", "/api/v1/keys/SAE-B/dec_keys?key_ID=x"]

    @Test func aCallerWithoutACertificateGets401AndTheServiceIsNeverAsked() async {
        let fake = FakeKeyService()
        let routes = KMERoutes(fake)
        for path in Self.paths {
            let answer = await routes.get(path, as: nil)
            #expect(answer.status == 401, "\(path): \(answer)")
            #expect(answer.message == "no client certificate")
        }
        for path in ["/api/v1/keys/SAE-B/enc_keys", "/api/v1/keys/SAE-B/dec_keys"] {
            let answer = await routes.post(path, as: nil, "{}")
            #expect(answer.status == 401, "\(path): \(answer)")
        }
        #expect(fake.recorded.isEmpty)
    }

    @Test func malformedRequestsGet400NamingTheFieldAndNeverReachTheService() async {
        let fake = FakeKeyService()
        let routes = KMERoutes(fake)
        let enc = "/api/v1/keys/SAE-B/enc_keys", dec = "/api/v1/keys/SAE-B/dec_keys"
        let cases: [(KMEAnswer, String)] = [
            (await routes.get(enc + "?number=three", as: "SAE-A"), "number must be an integer, got 'three'"),
            (await routes.get(enc + "?size=1.5", as: "SAE-A"), "size must be an integer, got '1.5'"),
            (await routes.post(enc, as: "SAE-A", "{\"number\": "), "malformed JSON in the request body"),
            (await routes.post(enc, as: "SAE-A", "[1, 2]"), "the request body must be a JSON object"),
            (await routes.post(enc, as: "SAE-A", "{\"number\": \"3\"}"), "number must be an integer"),
            (await routes.post(enc, as: "SAE-A", "{\"size\": 2.5}"), "size must be an integer"),
            (await routes.post(enc, as: "SAE-A", "{\"additional_slave_SAE_IDs\": \"SAE-C\"}"), "additional_slave_SAE_IDs must be an array of strings"),
            (await routes.post(enc, as: "SAE-A", "{\"additional_slave_SAE_IDs\": [3]}"), "additional_slave_SAE_IDs must be an array of strings"),
            (await routes.post(enc, as: "SAE-A", "{\"extension_mandatory\": {\"x\": 1}}"), "extension_mandatory must be an array of objects"),
            (await routes.post(enc, as: "SAE-A", "{\"extension_mandatory\": [\"x\"]}"), "extension_mandatory must be an array of objects"),
            (await routes.get(dec, as: "SAE-B"), "dec_keys: the GET form needs ?key_ID=<uuid>"),
            (await routes.get(dec + "?key_ID=", as: "SAE-B"), "dec_keys: the GET form needs ?key_ID=<uuid>"),
        ]
        for (answer, message) in cases {
            #expect(answer.status == 400, "\(answer)")
            #expect(answer.message == message)
        }
        let usage = "dec_keys: the body must be {\"key_IDs\": [{\"key_ID\": \"<uuid>\"}, ...]}"
        for body in ["{}", "{\"key_IDs\": []}", "{\"key_IDs\": [\"x\"]}", "{\"key_IDs\": [{\"id\": \"x\"}]}", "{\"key_IDs\": [{\"key_ID\": 5}]}"] {
            let answer = await routes.post(dec, as: "SAE-B", body)
            #expect(answer.status == 400 && answer.message == usage, "\(body): \(answer)")
        }
        let huge = ByteBuffer(repeating: UInt8(ascii: " "), count: (1 << 20) + 1)
        let tooLarge = await routes.call(.post, enc, as: "SAE-A", body: huge)
        #expect(tooLarge.status == 400 && tooLarge.message == "request body unreadable or larger than 1 MiB", "\(tooLarge)")
        #expect(fake.recorded.isEmpty, "\(fake.recorded)")
    }

    @Test func wellFormedRequestsReachTheServiceAsParsed() async {
        let fake = FakeKeyService(keys: [KMEKey(id: "k1", bytes: [0xDE, 0xAD]), KMEKey(id: "k2", bytes: [1])])
        let routes = KMERoutes(fake)
        let status = await routes.get("/api/v1/keys/SAE%2DB/status", as: "SAE-A")
        #expect(status.status == 200, "\(status)")
        #expect(status.json?["slave_SAE_ID"] as? String == "SAE-B" && status.json?["stored_key_count"] as? Int == 7)
        #expect(status.json?["max_SAE_ID_count"] as? Int == 0)
        let body = "{\"number\": 2, \"size\": 512, \"additional_slave_SAE_IDs\": [\"SAE-C\"], \"extension_mandatory\": [{\"b\": 1, \"a\": true}], \"extension_optional\": [{\"z\": 0}]}"
        let enc = await routes.post("/api/v1/keys/SAE-B/enc_keys", as: "SAE-A", body)
        #expect(enc.status == 200, "\(enc)")
        #expect(fake.request == KMEKeyRequest(number: 2, size: 512, additionalSlaves: ["SAE-C"], mandatoryExtensions: ["a", "b"],
                                              optionalExtensions: ["z"]))
        #expect(enc.keys.map(\.id) == ["k1", "k2"] && enc.keys.map(\.bytes) == [[0xDE, 0xAD], [1]])
        let get = await routes.get("/api/v1/keys/SAE-B/enc_keys?number=3", as: "SAE-A")
        #expect(get.status == 200 && fake.request == KMEKeyRequest(number: 3))
        let empty = await routes.post("/api/v1/keys/SAE-B/enc_keys", as: "SAE-A", "")
        #expect(empty.status == 200 && fake.request == KMEKeyRequest())
        let dec = await routes.post("/api/v1/keys/SAE-A/dec_keys", as: "SAE-B", "{\"key_IDs\": [{\"key_ID\": \"k1\"}, {\"key_ID\": \"k2\"}]}")
        #expect(dec.status == 200)
        let decGet = await routes.get("/api/v1/keys/SAE-A/dec_keys?key_ID=k1", as: "SAE-B")
        #expect(decGet.status == 200)
        #expect(fake.recorded == ["status SAE-A SAE-B", "enc SAE-A SAE-B", "enc SAE-A SAE-B", "enc SAE-A SAE-B",
                                  "dec SAE-B SAE-A k1,k2", "dec SAE-B SAE-A k1"])
    }

    @Test(arguments: [KMEError(.badRequest, "b"), KMEError(.unauthorized, "u"), KMEError(.serviceUnavailable, "s")])
    func theServicesErrorsKeepTheirStatusAndMessage(error: KMEError) async {
        let routes = KMERoutes(FakeKeyService(failing: error))
        for answer in [await routes.get("/api/v1/keys/SAE-B/status", as: "SAE-A"),
                       await routes.get("/api/v1/keys/SAE-B/enc_keys", as: "SAE-A"),
                       await routes.post("/api/v1/keys/SAE-B/dec_keys", as: "SAE-A", "{\"key_IDs\": [{\"key_ID\": \"k\"}]}")] {
            #expect(answer.status == Int(error.status.code), "\(answer)")
            #expect(answer.json?.keys.sorted() == ["message"] && answer.message == error.message)
        }
    }
}

/// Every refusal of the node's key service through its routes, on line-3 in one thread: the
/// relay that `enc_keys` starts runs on the deterministic network's event loops.
@Suite struct NodeKeyServiceTests {
    /// line-3 with keys distilled on both links (so relays have keys to spend).
    static func line3() throws -> DeterministicNetwork {
        let net = try DeterministicNetwork(topology: TestTopologies.shipped("line-3"))
        // 20 s of emulated time: each 25 km link distils a 2^16-bit block in well under that.
        let spare = net.run(seconds: 20) {
            net.topology.links.allSatisfy { link in (net.node(link.a.rawValue)?.pools.level(link.name)?.spareKeys ?? 0) >= 4 }
        }
        #expect(spare, "line-3 has no spare keys after 20 emulated s")
        return net
    }

    static func routes(_ net: DeterministicNetwork, _ node: String) -> KMERoutes { KMERoutes(net.node(node)!.keyService) }

    @Test func statusAndEncKeysRefuseWhatTheStandardRefuses() throws {
        let net = try Self.line3()
        let alice = Self.routes(net, "Alice")
        let enc = "/api/v1/keys/SAE-Bob/enc_keys"
        let answers = net.kme("Alice") {
            [await alice.get("/api/v1/keys/SAE-Bob/status", as: "SAE-Alice"),
             await alice.get("/api/v1/keys/SAE-Alice/status", as: "SAE-Bob"),
             await alice.get("/api/v1/keys/SAE-Nobody/status", as: "SAE-Alice"),
             await alice.get(enc, as: "SAE-Carol"),
             await alice.get("/api/v1/keys/SAE-Nobody/enc_keys", as: "SAE-Alice"),
             await alice.get(enc + "?number=0", as: "SAE-Alice"),
             await alice.get(enc + "?number=129", as: "SAE-Alice"),
             await alice.get(enc + "?size=12", as: "SAE-Alice"),
             await alice.get(enc + "?size=0", as: "SAE-Alice"),
             await alice.get(enc + "?size=8200", as: "SAE-Alice"),
             await alice.post(enc, as: "SAE-Alice", "{\"extension_mandatory\": [{\"qkdnet_route\": \"x\"}]}"),
             await alice.post(enc, as: "SAE-Alice", "{\"additional_slave_SAE_IDs\": [\"SAE-Carol\"]}")]
        }
        let a = try #require(answers)
        #expect(a[0].status == 200 && a[0].json?["target_KME_ID"] as? String == "Bob", "\(a[0])")
        let expected: [(Int, String)] = [
            (401, "SAE 'SAE-Bob' is not attached to KME Alice"),
            (400, "unknown slave SAE 'SAE-Nobody'"),
            (401, "SAE 'SAE-Carol' is not attached to KME Alice"),
            (400, "unknown slave SAE 'SAE-Nobody'"),
            (400, "number shall be at least 1, got 0"),
            (400, "number 129 exceeds max_key_per_request 128"),
            (400, "size shall be a multiple of 8"),
            (400, "size 0 outside min_key_size 8 ... max_key_size 8192"),
            (400, "size 8200 outside min_key_size 8 ... max_key_size 8192"),
            (400, "not all extension_mandatory parameters are supported (qkdnet_route)"),
            (400, "additional_slave_SAE_IDs: key multicast is not supported (max_SAE_ID_count 0)"),
        ]
        for (answer, (status, message)) in zip(a.dropFirst(), expected) {
            #expect(answer.status == status && answer.message == message, "\(answer)")
        }
        #expect(net.status("Alice")?.relays?.requested == 0, "no refused request reached the relay")
    }

    @Test func aRelayedKeyIsCollectedOnceByItsSlaveOnly() throws {
        let net = try Self.line3()
        let alice = Self.routes(net, "Alice"), bob = Self.routes(net, "Bob")
        let enc = try #require(net.kme("Alice") { await alice.get("/api/v1/keys/SAE-Bob/enc_keys?number=2&size=512", as: "SAE-Alice") })
        #expect(enc.status == 200, "\(enc)")
        let keys = enc.keys
        #expect(keys.count == 2 && keys.allSatisfy { $0.bytes.count == 64 })
        let ids = keys.map { "{\"key_ID\": \"\($0.id)\"}" }.joined(separator: ",")
        let tooMany = (0...128).map { _ in "{\"key_ID\": \"\(UUID().uuidString)\"}" }.joined(separator: ",")
        let unknown = [UUID().uuidString, UUID().uuidString]
        let unknownIDs = unknown.map { "{\"key_ID\": \"\($0)\"}" }.joined(separator: ",")
        let dec = "/api/v1/keys/SAE-Alice/dec_keys"
        let answers = try #require(net.kme("Bob") {
            [await bob.post(dec, as: "SAE-Carol", "{\"key_IDs\": [\(ids)]}"),
             await bob.post("/api/v1/keys/SAE-Nobody/dec_keys", as: "SAE-Bob", "{\"key_IDs\": [\(ids)]}"),
             await bob.get(dec + "?key_ID=not-a-uuid", as: "SAE-Bob"),
             await bob.post(dec, as: "SAE-Bob", "{\"key_IDs\": [\(tooMany)]}"),
             await bob.post(dec, as: "SAE-Alice", "{\"key_IDs\": [\(ids)]}"),
             await bob.post(dec, as: "SAE-Bob", "{\"key_IDs\": [\(ids)]}"),
             await bob.post(dec, as: "SAE-Bob", "{\"key_IDs\": [\(ids)]}"),
             await bob.post(dec, as: "SAE-Carol", "{\"key_IDs\": [\(unknownIDs)]}")]
        })
        // Another SAE of the slave's KME asking for the pair's keys gets exactly the answer it
        // gets for key IDs that exist nowhere (no existence oracle): 400, the IDs named.
        func shape(_ message: String, _ ids: [String]) -> String {
            ids.reduce(message.lowercased()) { $0.replacingOccurrences(of: $1.lowercased(), with: "<id>") }
        }
        #expect(answers[0].status == 400 && answers[7].status == 400, "\(answers[0]) \(answers[7])")
        #expect(shape(answers[0].message, keys.map(\.id)) == shape(answers[7].message, unknown), "\(answers[0]) \(answers[7])")
        #expect(answers[0].message.hasPrefix("one or more keys specified are not found on KME"), "\(answers[0])")
        #expect(answers[1].status == 400 && answers[1].message == "unknown master SAE 'SAE-Nobody'", "\(answers[1])")
        #expect(answers[2].status == 400 && answers[2].message == "key_ID 'not-a-uuid' is not a UUID", "\(answers[2])")
        #expect(answers[3].status == 400 && answers[3].message == "129 key IDs exceed max_key_per_request 128", "\(answers[3])")
        #expect(answers[4].status == 401 && answers[4].message == "SAE 'SAE-Alice' is not attached to KME Bob", "\(answers[4])")
        // The refused collections took nothing: the slave then collects both keys, bit for bit
        // what the master got; a second time they are gone.
        #expect(answers[5].status == 200, "\(answers[5])")
        #expect(answers[5].keys.map(\.id) == keys.map(\.id) && answers[5].keys.map(\.bytes) == keys.map(\.bytes))
        #expect(answers[6].status == 400 && answers[6].message.hasPrefix("one or more keys specified are not found on KME"), "\(answers[6])")
    }

    /// The KME's bounds (topology `kme`): a master SAE with `max_requests_per_sae` requests in
    /// flight gets 503 at once for the next, a KME with `max_requests` in flight refuses every
    /// SAE, and both serve again once answered; a pair of SAEs with `max_waiting_bits_per_pair`
    /// keys waiting gets no more, made at the slave's own KME (503) or relayed (the destination
    /// refuses before anything is released; the master's KME then answers the pair at once for
    /// a while instead of spending link keys), until the slave collects them.
    @Test func theKMEBoundsRequestsInFlightAndKeysWaitingPerSAE() throws {
        let text = try String(contentsOfFile: "\(TestTopologies.repositoryRoot)/Topologies/line-3.yaml", encoding: .utf8)
        let bounded = text.replacingOccurrences(of: "seed: 20171229", with: "seed: 20171229\nkme: { max_requests_per_sae: 2, max_requests: 3, max_waiting_bits_per_pair: 768 }")
        #expect(bounded != text)
        let net = try DeterministicNetwork(topology: TopologyParser.parse(bounded, file: "line-3-bounded.yaml"))
        // 20 s of emulated time: each 25 km link distils a 2^16-bit block in well under that.
        #expect(net.run(seconds: 20) { net.topology.links.allSatisfy { (net.node($0.a.rawValue)?.pools.level($0.name)?.spareKeys ?? 0) >= 8 } })
        let requests = try #require(net.node("Bob")?.keyRequests)
        func ask(_ master: String) -> PendingCall<Result<[ApplicationKey], KMEError>> {
            net.start { await requests.submit(master: master, slave: "SAE-Alice", destination: NodeID("Alice"), number: 1, size: 256) }
        }
        func refusal(_ call: PendingCall<Result<[ApplicationKey], KMEError>>) -> KMEError? {
            // 10 s: a refused call is answered at once, without the network stepping.
            guard eventually(within: 10, { call.value != nil }), case .failure(let e)? = call.value else { return nil }
            return e
        }
        let first = [ask("SAE-Bob"), ask("SAE-Bob")]
        // 10 s: handing a call to the event loop's queue takes microseconds.
        #expect(eventually(within: 10) { requests.outstanding == 2 })
        let third = refusal(ask("SAE-Bob"))
        #expect(third?.status == .serviceUnavailable && third?.message.contains("max_requests_per_sae") == true, "\(String(describing: third))")
        let carol = ask("SAE-Carol")
        #expect(eventually(within: 10) { requests.outstanding == 3 })
        let full = refusal(ask("SAE-Carol"))
        #expect(full?.status == .serviceUnavailable && full?.message.contains("kme.max_requests") == true, "\(String(describing: full))")
        #expect(requests.refused == 2)
        // Stepped, the network answers the three in flight with keys; then SAE-Bob is served again.
        #expect(net.run(seconds: 30) { requests.outstanding == 0 })
        // 10 s: an answered call's task resumes on its own thread (microseconds).
        #expect(eventually(within: 10) { (first + [carol]).allSatisfy { $0.value != nil } })
        for call in first + [carol] { #expect((try? call.value?.get())?.count == 1, "\(String(describing: call.value))") }
        let bob = KMERoutes(net.node("Bob")!.keyService), alice = KMERoutes(net.node("Alice")!.keyService)
        // Keys waiting at Bob for SAE-Bob from SAE-Carol (same node): three of 256 bits fill the bound.
        let local = try #require(net.kme("Bob") {
            [await bob.get("/api/v1/keys/SAE-Bob/enc_keys?number=3", as: "SAE-Carol"),
             await bob.get("/api/v1/keys/SAE-Bob/enc_keys?number=1", as: "SAE-Carol")]
        })
        #expect(local[0].status == 200 && local[0].keys.count == 3, "\(local[0])")
        #expect(local[1].status == 503 && local[1].message.contains("max_waiting_bits_per_pair 768"), "\(local[1])")
        // Once SAE-Bob collects one, the pair gets one more.
        let mine = "{\"key_IDs\": [{\"key_ID\": \"\(local[0].keys[0].id)\"}]}"
        let afterCollect = try #require(net.kme("Bob") {
            [await bob.post("/api/v1/keys/SAE-Carol/dec_keys", as: "SAE-Bob", mine),
             await bob.get("/api/v1/keys/SAE-Bob/enc_keys?number=1", as: "SAE-Carol")]
        })
        #expect(afterCollect[0].status == 200 && afterCollect[1].status == 200, "\(afterCollect)")
        // Another pair's quota is its own: three relayed from SAE-Alice fill it; a fourth is
        // refused by Bob, and the next one at once by Alice, without a relay.
        let relayed = try #require(net.kme("Alice") {
            [await alice.get("/api/v1/keys/SAE-Bob/enc_keys?number=3", as: "SAE-Alice"),
             await alice.get("/api/v1/keys/SAE-Bob/enc_keys?number=1", as: "SAE-Alice")]
        })
        #expect(relayed[0].status == 200 && relayed[0].keys.count == 3, "\(relayed[0])")
        #expect(relayed[1].status == 503 && relayed[1].message.contains("refused by the destination"), "\(relayed[1])")
        let started = net.status("Alice")?.relays?.started
        #expect(started == 2, "a refusing destination is not retried")
        let held = try #require(net.kme("Alice") { await alice.get("/api/v1/keys/SAE-Bob/enc_keys?number=1", as: "SAE-Alice") })
        #expect(held.status == 503 && held.message == relayed[1].message && net.status("Alice")?.relays?.started == started, "\(held)")
        // status counts both kinds of refusal: at Bob's bounds on requests in flight, and held off at Alice.
        #expect(net.status("Bob")?.relays?.refusedBusy == 2 && net.status("Alice")?.relays?.heldOff == 1,
                "\(String(describing: net.status("Bob")?.relays)) \(String(describing: net.status("Alice")?.relays))")
        // (The hold's end is RelayNodeTests' to show: pure, without ten emulated seconds of line-3.)
    }

    @Test func noRouteOrAStoppingNodeGets503() throws {
        let net = try Self.line3()
        let alice = Self.routes(net, "Alice")
        // A fibre cut on Relay-Bob: no path from Alice to Bob's SAE once Alice learns it is down.
        let cut = net.control(ControlRequest.fault(.cut(link: "Relay-Bob")), to: "Relay")
        #expect(cut?.ok == true, "\(String(describing: cut))")
        let down = net.run(seconds: 10) { net.linkState("Relay", "Relay-Bob") == .down && net.linkState("Bob", "Relay-Bob") == .down }
        #expect(down)
        let refused = try #require(net.kme("Alice") { await alice.get("/api/v1/keys/SAE-Carol/enc_keys", as: "SAE-Alice") })
        #expect(refused.status == 503, "\(refused)")
        #expect(refused.message.hasPrefix("no usable path from Alice to Bob for 256 bits") && refused.message.contains("Relay-Bob"),
                "\(refused.message)")
        #expect(net.status("Alice")?.relays?.noPath == 1)
        net.stop()
        let stopping = try #require(net.kme("Alice") { await alice.get("/api/v1/keys/SAE-Bob/enc_keys", as: "SAE-Alice") })
        #expect(stopping.status == 503 && stopping.message == "the node is stopping", "\(stopping)")
    }
}
