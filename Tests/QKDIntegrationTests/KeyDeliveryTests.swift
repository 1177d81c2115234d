import QKDTestKit
import Foundation
import QKDCore
import QKDLaunch
import QKDTopology
import QKDWire
import Testing

/// ETSI GS QKD 014 key delivery on line-3 with real node processes: keys relayed from the
/// master SAE's KME to the slave SAE's KME, taken through the API with curl and with the PyPI
/// client.
@Suite(.serialized) struct KeyDeliveryTests {
    struct Client {
        let network: Network
        let pki: PKI
        let urls: [String: String]

        init(_ network: Network) throws {
            self.network = network
            pki = PKI(runDirectory: network.layout.root)
            urls = Dictionary(uniqueKeysWithValues: network.status().nodes.compactMap { n in n.kmeURL.map { (n.id, $0) } })
        }

        /// A request to `node`'s KME as `sae` (GET, or POST with `body`).
        func call(_ node: String, _ path: String, as sae: String, body: String? = nil) throws -> Curl {
            try Curl.request(try #require(urls[node]) + path, body: body, ca: pki.caPath, certificate: pki.saeCertificatePath(sae),
                             key: pki.saeKeyPath(sae), scratch: network.layout.root)
        }

        /// Keys consumed so far on every link, at both ends (relays consume; distillation does not).
        func consumed() -> [String: UInt64] {
            var out: [String: UInt64] = [:]
            for link in network.pools().links { for end in link.ends { out["\(link.link)/\(end.role)"] = end.consumedKeysTotal } }
            return out
        }
    }

    /// The first key SAE-Alice takes for SAE-Bob in a fresh line-3 with one seed: different in
    /// every secret run (the links' bootstrap secrets and the relay's key IDs come from the OS
    /// CSPRNG), the same in every `--reproducible` run; the audit passes in each. The quantum
    /// layer runs 10^4 times slower than real time, so the key is relayed over the bootstrap
    /// keys in both modes (which pool keys a relay takes then does not depend on timing).
    @Test func twoFreshRunsOfOneSeedShareNoKeyUnlessReproducible() throws {
        func firstKey(reproducible: Bool) throws -> (id: String, key: Data) {
            let network = try Network.up(topologyPath: Harness.topology("line-3.yaml"), runDir: Harness.runDirectory("fresh"),
                                         binDirectory: Harness.binDirectory, readyTimeoutSeconds: 60, reproducible: reproducible,
                                         extraNodeArguments: ["--time-scale", "0.0001"])
            var passed = false
            defer {
                if !passed { Harness.dumpLogs(network) }
                Harness.tearDown(network)
            }
            #expect(network.topology.secrecy == (reproducible ? .reproducible : .secret))
            // What `qkdctl status` shows, from the run directory alone (the manifest keeps the flag).
            let status = try Network.open(runDir: network.layout.root).status()
            #expect(status.secrecy == (reproducible ? "reproducible" : "secret") && status.seed == network.topology.seed)
            // The run directory and its logs are the owner's only.
            func mode(_ path: String) -> Int? { (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue }
            #expect(mode(network.layout.root) == 0o700 && mode(network.layout.logsDirectory) == 0o700)
            let logs = (try? FileManager.default.contentsOfDirectory(atPath: network.layout.logsDirectory)) ?? []
            #expect(logs.count >= 3 && logs.allSatisfy { mode("\(network.layout.logsDirectory)/\($0)") == 0o600 }, "\(logs.map { ($0, mode("\(network.layout.logsDirectory)/\($0)") ?? -1) })")
            // Routing converges within a few heartbeats (1 s each).
            #expect(eventually(within: 30) { (try? network.routes(from: NodeID("Alice"), to: NodeID("Bob")).get().path) != nil })
            let enc = try Client(network).call("Alice", "/api/v1/keys/SAE-Bob/enc_keys", as: "SAE-Alice")
            #expect(enc.status == 200, "\(enc.body)")
            let key = try #require(enc.keys.first)
            let audit = network.audit()
            #expect(audit.ok && audit.linksChecked == 2, "\(audit)")
            passed = true
            return key
        }
        let a = try firstKey(reproducible: false), b = try firstKey(reproducible: false)
        #expect(a.key.count == 32 && a.key != b.key && a.id != b.id)
        let r = try firstKey(reproducible: true), q = try firstKey(reproducible: true)
        #expect(r.key == q.key && r.id == q.id)
        #expect(r.key != a.key && r.key != b.key)
    }

    @Test func aKeyTakenAtOneEndIsDeliveredOnceAtTheOtherAndBadRequestsChangeNothing() throws {
        let network = try Harness.up("line-3.yaml", label: "delivery")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        var api = try Client(network)
        // Each end's routing view converges on its own: wait for both (keys are relayed both ways).
        #expect(eventually(within: 30) {
            (try? network.routes(from: NodeID("Alice"), to: NodeID("Bob")).get().path) != nil
                && (try? network.routes(from: NodeID("Bob"), to: NodeID("Alice")).get().path) != nil
        })

        // GET enc_keys (defaults: one 256-bit key), POST dec_keys at the slave's KME: same bytes.
        let enc = try api.call("Alice", "/api/v1/keys/SAE-Bob/enc_keys", as: "SAE-Alice")
        #expect(enc.status == 200, "\(enc)")
        let key = try #require(enc.keys.first)
        #expect(enc.keys.count == 1 && key.key.count == 32 && KeyID(uuidString: key.id) != nil)
        // Another SAE attached to the slave's KME is not the slave: the key is not found for it
        // (400, as for an ID that exists nowhere: no existence oracle), and the key stays.
        let carol = try api.call("Bob", "/api/v1/keys/SAE-Alice/dec_keys", as: "SAE-Carol", body: #"{"key_IDs":[{"key_ID":"\#(key.id)"}]}"#)
        #expect(carol.status == 400 && (carol.json?["message"] as? String ?? "").contains("not found on KME"), "\(carol)")
        // An SAE of another KME: 401.
        let relay = try api.call("Bob", "/api/v1/keys/SAE-Alice/dec_keys", as: "SAE-Relay", body: #"{"key_IDs":[{"key_ID":"\#(key.id)"}]}"#)
        #expect(relay.status == 401, "\(relay)")
        let dec = try api.call("Bob", "/api/v1/keys/SAE-Alice/dec_keys", as: "SAE-Bob", body: #"{"key_IDs":[{"key_ID":"\#(key.id)"}]}"#)
        #expect(dec.status == 200, "\(dec)")
        #expect(dec.keys.count == 1 && dec.keys.first?.id == key.id && dec.keys.first?.key == key.key)
        // Delivered once: a second dec_keys is 400 with the spec's message.
        let again = try api.call("Bob", "/api/v1/keys/SAE-Alice/dec_keys?key_ID=\(key.id)", as: "SAE-Bob")
        #expect(again.status == 400 && (again.json?["message"] as? String ?? "").contains("not found on KME"), "\(again)")

        // POST enc_keys for three 512-bit keys the other way; GET and POST dec_keys.
        let three = try api.call("Bob", "/api/v1/keys/SAE-Alice/enc_keys", as: "SAE-Bob", body: #"{"number":3,"size":512,"extension_optional":[{"x":1}]}"#)
        #expect(three.status == 200 && three.keys.count == 3 && three.keys.allSatisfy { $0.key.count == 64 }, "\(three)")
        #expect(Set(three.keys.map(\.id)).count == 3 && Set(three.keys.map(\.key)).count == 3)
        if three.keys.count == 3 {
            let first = try api.call("Alice", "/api/v1/keys/SAE-Bob/dec_keys?key_ID=\(three.keys[0].id)", as: "SAE-Alice")
            #expect(first.status == 200 && first.keys.first?.key == three.keys[0].key, "\(first)")
            let rest = try api.call("Alice", "/api/v1/keys/SAE-Bob/dec_keys", as: "SAE-Alice",
                                    body: #"{"key_IDs":[{"key_ID":"\#(three.keys[1].id)"},{"key_ID":"\#(three.keys[2].id)"}]}"#)
            #expect(rest.status == 200 && rest.keys.map(\.key) == [three.keys[1].key, three.keys[2].key], "\(rest)")
        }
        // Master and slave at the same KME: served locally, delivered once.
        let local = try api.call("Bob", "/api/v1/keys/SAE-Carol/enc_keys?number=2&size=128", as: "SAE-Bob")
        #expect(local.status == 200 && local.keys.count == 2 && local.keys.allSatisfy { $0.key.count == 16 }, "\(local)")
        if let k = local.keys.first {
            let got = try api.call("Bob", "/api/v1/keys/SAE-Bob/dec_keys?key_ID=\(k.id)", as: "SAE-Carol")
            #expect(got.status == 200 && got.keys.first?.key == k.key, "\(got)")
        }

        // A key waiting for its slave survives the slave's node being killed (-9) and restarted.
        let waiting = try api.call("Alice", "/api/v1/keys/SAE-Bob/enc_keys?size=1024", as: "SAE-Alice")
        let kept = try #require(waiting.keys.first, "\(waiting)")
        let bob = NodeID("Bob")
        let old = try #require(network.recordedPID(bob))
        kill(old, SIGKILL)
        Processes.waitUntilGone([old], seconds: 5)
        // 30 s: a restarted node reads its store and hears its neighbour (about a second when idle).
        try network.waitReady([bob: try network.startNode(bob)], timeoutSeconds: 30)
        let restarted = try Client(network)
        let collected = try restarted.call("Bob", "/api/v1/keys/SAE-Alice/dec_keys?key_ID=\(kept.id)", as: "SAE-Bob")
        #expect(collected.status == 200 && collected.keys.first?.key == kept.key && kept.key.count == 128, "\(collected)")
        // 30 s: both links report up at both ends again after the restart (heartbeats every 200 ms).
        #expect(eventually(within: 30) { network.pools().links.allSatisfy { $0.state == .up } })

        // Bad requests: the spec's status and a JSON message; no relay runs, no pool changes.
        api = restarted
        let before = api.consumed()
        let bad: [(String, String, String?, Int, String)] = [
            ("Alice", "/api/v1/keys/SAE-Nobody/enc_keys", nil, 400, "SAE-Nobody"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys?size=100", nil, 400, "multiple of 8"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys", #"{"size":100}"#, 400, "multiple of 8"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys?number=129", nil, 400, "max_key_per_request"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys", #"{"number":1000}"#, 400, "max_key_per_request"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys", #"{"number":"#, 400, "malformed JSON"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys", #"{"number":"two"}"#, 400, "number"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys", #"{"extension_mandatory":[{"abc_route_type":"direct"}]}"#, 400, "extension_mandatory"),
            ("Alice", "/api/v1/keys/SAE-Bob/enc_keys", #"{"additional_slave_SAE_IDs":["SAE-Relay"]}"#, 400, "multicast"),
            ("Alice", "/api/v1/keys/SAE-Bob/dec_keys", #"{"key_IDs":[{"key_ID":"not-a-uuid"}]}"#, 400, "UUID"),
            ("Alice", "/api/v1/keys/SAE-Bob/dec_keys", #"{"keys":[]}"#, 400, "key_IDs"),
            ("Alice", "/api/v1/keys/SAE-Bob/dec_keys", nil, 400, "key_ID"),
        ]
        for (node, path, body, status, words) in bad {
            let r = try api.call(node, path, as: "SAE-Alice", body: body)
            #expect(r.status == status && (r.json?["message"] as? String ?? "").contains(words), "\(path) \(body ?? ""): \(r)")
        }
        let wrongKME = try api.call("Alice", "/api/v1/keys/SAE-Bob/enc_keys", as: "SAE-Bob")
        #expect(wrongKME.status == 401, "\(wrongKME)")
        #expect(api.consumed() == before, "a refused request consumed keys")
        // The relays consumed the same keys at both ends of every link.
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
        passed = true
    }

    /// The open-source client from PyPI (`etsi-qkd-014-client`, installed by `make deps`):
    /// status, get_key at Alice, get_key_with_id at Bob, same key.
    @Test func thePyPIClientTakesTheSameKeyAtBothEnds() throws {
        let client = try #require(KeyDeliveryTests.pypiClient(), "qkd014-client not found: run `make deps` (it installs etsi-qkd-014-client into .build/venv)")
        let network = try Harness.up("line-3.yaml", label: "pypi")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let api = try Client(network)
        // Each end's routing view converges on its own: wait for both.
        #expect(eventually(within: 30) {
            (try? network.routes(from: NodeID("Alice"), to: NodeID("Bob")).get().path) != nil
                && (try? network.routes(from: NodeID("Bob"), to: NodeID("Alice")).get().path) != nil
        })
        func run(_ node: String, as sae: String, _ arguments: [String]) throws -> String {
            let host = try #require(api.urls[node]).replacingOccurrences(of: "https://", with: "")
            let out = network.layout.root + "/pypi-\(UInt32.random(in: 0...UInt32.max)).out"
            let pid = try Processes.spawn(executable: client, arguments: [
                "-H", host, "-c", api.pki.saeCertificatePath(sae), "-k", api.pki.saeKeyPath(sae), "-r", api.pki.caPath,
            ] + arguments, outputPath: out)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        }
        let status = try run("Alice", as: "SAE-Alice", ["get_status", "SAE-Bob"])
        #expect(status.contains("Response code : 200") && status.contains("target_KME_ID : Bob"), "\(status)")
        let taken = try run("Alice", as: "SAE-Alice", ["get_key", "SAE-Bob"])
        #expect(taken.contains("Response code : 200"), "\(taken)")
        func field(_ name: String, _ text: String) -> String? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " : ") }.map { String($0.dropFirst(name.count + 3)) }
        }
        let id = try #require(field("Key id", taken), "\(taken)")
        let key = try #require(field("Key", taken), "\(taken)")
        #expect(Data(base64Encoded: key)?.count == 32)
        // (The client's argument order: the subcommand's key ID, then the SAE ID.)
        let given = try run("Bob", as: "SAE-Bob", ["get_key_with_id", id, "SAE-Alice"])
        #expect(given.contains("Response code : 200") && field("Key id", given) == id && field("Key", given) == key, "\(given)")
        let twice = try run("Bob", as: "SAE-Bob", ["get_key_with_id", id, "SAE-Alice"])
        #expect(twice.contains("Response code : 400"), "\(twice)")
        passed = true
    }

    /// The issue's scenario on the backbone (quantum layer slowed down; the relay uses the
    /// pre-shared keys): Beijing's SAE takes a key for Shanghai's across 31 hops.
    @Test func aBeijingKeyReachesShanghaiThroughTheAPI() throws {
        let network = try Harness.upSlowed("beijing-shanghai.yaml", label: "backbone-api")
        var passed = false
        defer {
            if !passed { for n in ["Beijing", "Shanghai"] { print(network.diagnostics(NodeID(n), lines: 20)) } }
            Harness.tearDown(network)
        }
        let api = try Client(network)
        var path: [String]?
        // 60 s: every one of the 31 links has keys beyond its reserve and routing has heard of them all.
        #expect(eventually(within: 60) { path = try? network.routes(from: NodeID("Beijing"), to: NodeID("Shanghai")).get().path; return path != nil })
        #expect(path?.count == 32)
        let enc = try api.call("Beijing", "/api/v1/keys/SAE-Shanghai/enc_keys", as: "SAE-Beijing", body: #"{"number":1,"size":256}"#)
        #expect(enc.status == 200, "\(enc)")
        let key = try #require(enc.keys.first, "\(enc)")
        // Until collected, the slave's KME has it on record with the trusted nodes that saw it.
        let waiting = network.relayShow(keyID: key.id, salt: 3)
        #expect(Set(waiting.keys) == [NodeID("Shanghai")] && waiting[NodeID("Shanghai")]?.path == path)
        let body = #"{"key_IDs":[{"key_ID":"\#(key.id)"}]}"#
        let other = try api.call("Shanghai", "/api/v1/keys/SAE-Beijing/dec_keys", as: "SAE-Shanghai-Exchange", body: body)
        #expect(other.status == 400, "\(other)")
        let dec = try api.call("Shanghai", "/api/v1/keys/SAE-Beijing/dec_keys", as: "SAE-Shanghai", body: body)
        #expect(dec.status == 200 && dec.keys.first?.id == key.id && dec.keys.first?.key == key.key && key.key.count == 32, "\(dec)")
        let again = try api.call("Shanghai", "/api/v1/keys/SAE-Beijing/dec_keys", as: "SAE-Shanghai", body: body)
        #expect(again.status == 400, "\(again)")
        #expect(network.relayShow(keyID: key.id, salt: 3).isEmpty, "a collected key is gone from the KME")
        passed = true
    }

    /// `qkd014-client`: QKDNET_QKD014_CLIENT, else the one `make deps` installs in .build/venv.
    static func pypiClient() -> String? {
        let candidates = [ProcessInfo.processInfo.environment["QKDNET_QKD014_CLIENT"], Harness.repository + "/.build/venv/bin/qkd014-client"]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
