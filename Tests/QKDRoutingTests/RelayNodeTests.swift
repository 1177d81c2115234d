import QKDCore
import QKDKeyPool
import QKDRouting
import QKDTopology
import QKDWire
import Testing

/// Four `RelayNode`s on a square, A-B-D and A-C-D (two node-disjoint paths from A to D), every
/// link's ends holding the same keys; messages carried by hand, dropped at dead nodes.
struct RelaySquare {
    static let topology = try! TopologyParser.parse("""
        name: square
        seed: 3
        nodes:
          - { id: A, lat: 0, lon: 0, role: metro-core }
          - { id: B, lat: 1, lon: 1, role: trusted-relay }
          - { id: C, lat: -1, lon: 1, role: trusted-relay }
          - { id: D, lat: 0, lon: 2, role: metro-core }
        links:
          - { a: A, b: B, length_km: 10 }
          - { a: B, b: D, length_km: 10 }
          - { a: A, b: C, length_km: 20 }
          - { a: C, b: D, length_km: 20 }
        """, file: "square.yaml")

    var nodes: [NodeID: RelayNode] = [:]
    var keys: [NodeID: PoolKeys] = [:]
    var wire: [(from: NodeID, to: NodeID, kind: MessageKind, payload: [UInt8])] = []
    /// Everything the nodes said that is not a message: by node.
    var effects: [NodeID: [RelayNode.Directive]] = [:]
    var dead: Set<NodeID> = []
    var down: Set<String> = []
    var now = Instant(nanoseconds: 1_000_000_000)

    init(keysPerLink: Int = 40) {
        for node in Self.topology.nodes {
            nodes[node.id] = RelayNode(node: node.id, topology: Self.topology, epoch: 1)
        }
        keys = PoolKeys.agreed(Self.topology, keysPerLink: keysPerLink, seed: 11)
    }

    static func id(_ name: String) -> NodeID { NodeID(name) }

    func views(_ node: NodeID) -> [RelayNode.LinkView] {
        Self.topology.links(of: node).map { link in
            let pool = keys[node]!.pools[link.name]!
            let up = !down.contains(link.name) && !dead.contains(link.peer(of: node)!)
            return .init(link: link, up: up, compromised: false, synchronised: true,
                         spareKeys: max(0, pool.availableKeys - pool.configuration.authenticationReserve))
        }
    }

    mutating func record(_ directives: [RelayNode.Directive], at node: NodeID) {
        for d in directives {
            if case .send(let to, let kind, let payload) = d {
                wire.append((node, to, kind, payload))
            } else {
                effects[node, default: []].append(d)
            }
        }
    }

    mutating func tick(_ node: NodeID) {
        var k = keys[node]!
        record(nodes[node]!.tick(at: now, links: views(node), keys: &k), at: node)
        keys[node] = k
    }

    mutating func tickAll() { for n in Self.topology.nodes.map(\.id) where !dead.contains(n) { tick(n) } }

    /// Delivers the first message on the wire (dropped if either end is dead).
    mutating func deliverOne() {
        let m = wire.removeFirst()
        guard !dead.contains(m.to), !dead.contains(m.from) else { return }
        let up = views(m.to).filter(\.up).compactMap { $0.link.peer(of: m.to) }
        var k = keys[m.to]!
        record(nodes[m.to]!.received(m.kind, m.payload, from: m.from, at: now, upNeighbours: up, keys: &k), at: m.to)
        keys[m.to] = k
    }

    mutating func deliverAll() { while !wire.isEmpty { deliverOne() } }

    /// Every node advertises and the view floods until quiet.
    mutating func converge() {
        tickAll()
        deliverAll()
    }

    mutating func request(_ id: UInt64, from: NodeID, to: NodeID, number: Int = 2, size: Int = 128) {
        var k = keys[from]!
        let r = RelayNode.ApplicationRequest(id: id, master: "SAE-\(from)", slave: "SAE-\(to)", destination: to, number: number, size: size)
        record(nodes[from]!.request(r, at: now, keys: &k), at: from)
        keys[from] = k
    }

    mutating func control(_ request: ControlRequest, at node: NodeID, client: [UInt8] = [1]) -> [RelayNode.Directive] {
        var k = keys[node]!
        let out = nodes[node]!.control(request, client: client, at: now, keys: &k) { _ in nil }
        keys[node] = k
        record(out.filter { if case .send = $0 { true } else { false } }, at: node)
        return out.filter { if case .send = $0 { false } else { true } }
    }

    func answers(_ node: NodeID) -> [(UInt64, Result<[ApplicationKey], RelayNode.Refusal>)] {
        (effects[node] ?? []).compactMap { if case .answer(let id, let r) = $0 { (id, r) } else { nil } }
    }

    func stored(_ node: NodeID) -> [ApplicationKey] {
        (effects[node] ?? []).flatMap { d -> [ApplicationKey] in if case .storeApplicationKeys(let k, _) = d { k } else { [] } }
    }

    func consumed(_ link: String, at node: NodeID) -> UInt64 { keys[node]!.pools[link]!.counters.consumed }
}

@Suite struct RelayNodeTests {
    let a = RelaySquare.id("A"), b = RelaySquare.id("B"), c = RelaySquare.id("C"), d = RelaySquare.id("D")

    @Test func linkStatesFloodOnceAndEveryNodeRoutes() throws {
        var net = RelaySquare()
        net.converge()
        for node in [a, b, c, d] { #expect(net.nodes[node]!.database.advertisements.count == 4, "\(node)") }
        let route = try net.nodes[a]!.path(to: d, bits: 256).get()
        #expect(route.nodes == [a, b, d])  // fewest hops, then the shorter fibre
        // An advertisement seen before is not flooded again.
        let old = try #require(net.nodes[b]!.database.advertisements["D"])
        var k = net.keys[a]!
        #expect(net.nodes[a]!.received(.linkState, old.encoded(), from: b, at: net.now, upNeighbours: [b, c], keys: &k).isEmpty)
        // A malformed one is logged, nothing else.
        let bad = net.nodes[a]!.received(.linkState, [1, 2, 3], from: b, at: net.now, upNeighbours: [b, c], keys: &k)
        #expect(bad.count == 1 && { if case .log(.warning, _, _) = bad[0] { true } else { false } }())
    }

    @Test func anApplicationRequestIsSplitIntoItsKeysAtBothEnds() throws {
        var net = RelaySquare()
        net.converge()
        net.request(7, from: a, to: d, number: 3, size: 128)
        net.deliverAll()
        let stored = net.stored(d)
        let answer = try #require(net.answers(a).first)
        #expect(answer.0 == 7)
        let released = try answer.1.get()
        #expect(released.count == 3 && released.allSatisfy { $0.bits.count == 128 && $0.master == "SAE-A" && $0.slave == "SAE-D" })
        #expect(released == stored)  // same IDs, same bits, same path at master and slave
        #expect(released[0].path == ["A", "B", "D"])
        #expect(Set(released.map(\.id)).count == 3 && released[0].bits != released[1].bits)
        // 384 bits: 2 pad keys and a tag key of each link of the path, at both of its ends.
        #expect(net.consumed("A-B", at: a) == 3 && net.consumed("A-B", at: b) == 3 && net.consumed("B-D", at: d) == 3)
        #expect(net.consumed("A-C", at: a) == 0)
        let counters = net.nodes[a]!.counters
        #expect(counters.requested == 1 && counters.started == 1 && counters.delivered == 1 && counters.failed == 0)
        #expect(net.nodes[d]!.counters.received == 1 && net.nodes[b]!.counters.forwarded == 1)
        // The destination stores before it confirms: its store directive precedes its Done.
        #expect(net.nodes[a]!.pending == 0)
    }

    /// A destination that cannot hold the keys for their slave SAE (too many waiting there)
    /// refuses before anything is released: no key at either end, the reason reaches the
    /// master, and no other route is tried (it would be refused the same way).
    @Test func aDestinationThatCannotHoldTheKeysRefusesOnceAndNothingIsReleased() throws {
        var net = RelaySquare()
        net.converge()
        net.keys[d]!.refusal = "SAE 'SAE-D' has 4096 keys waiting"
        net.request(3, from: a, to: d)
        net.deliverAll()
        let answer = try #require(net.answers(a).first)
        guard case .failure(let refusal) = answer.1 else { Issue.record("a refusing destination delivered a key"); return }
        #expect(refusal.message.contains("refused by the destination: SAE 'SAE-D' has 4096 keys waiting"), "\(refusal.message)")
        #expect(net.stored(d).isEmpty && net.answers(a).count == 1)
        #expect(net.nodes[a]!.counters.started == 1 && net.nodes[a]!.counters.failed == 1 && net.nodes[a]!.pending == 0)
        #expect(net.consumed("A-C", at: a) == 0, "no second route tried")
        // The pair's next request is answered at once, with no relay, for `refusalHoldNs`; after
        // it, tried again (the slave has collected in the meantime).
        let used = net.consumed("A-B", at: a)
        net.request(4, from: a, to: d)
        #expect(net.wire.isEmpty && net.consumed("A-B", at: a) == used)
        guard case .failure(let held)? = net.answers(a).first(where: { $0.0 == 4 })?.1 else { Issue.record("held request relayed"); return }
        #expect(held == refusal)
        net.keys[d]!.refusal = nil
        net.now = net.now.advanced(byNanoseconds: net.nodes[a]!.refusalHoldNs + 1)
        net.request(5, from: a, to: d)
        net.deliverAll()
        #expect((try? net.answers(a).first(where: { $0.0 == 5 })?.1.get())?.count == 2)
    }

    @Test func aHopDyingMidRelayIsRetriedOnAFreshRoute() throws {
        var net = RelaySquare()
        net.converge()
        net.request(1, from: a, to: d)
        net.deliverOne()  // the forward reaches B, who sends it on to D...
        net.dead.insert(b)  // ...and dies: its message to D is lost
        net.deliverAll()
        #expect(net.answers(a).isEmpty)
        // A sees its link to B go down: it advertises, and the relay through B is void.
        net.tick(a)
        var k = net.keys[a]!
        net.record(net.nodes[a]!.linkDown(to: b, at: net.now, keys: &k), at: a)
        net.keys[a] = k
        net.deliverAll()
        let keys = try #require(net.answers(a).first?.1).get()
        #expect(keys[0].path == ["A", "C", "D"], "retried around the dead node")
        #expect(net.stored(d) == keys)
        #expect(net.nodes[a]!.counters.started == 2 && net.nodes[a]!.counters.failed == 1 && net.nodes[a]!.counters.delivered == 1)
        // The void attempt's keys stay consumed (they were named in the clear): a pad and a tag key.
        #expect(net.consumed("A-B", at: a) == 2)
    }

    @Test func aSilentDestinationTimesOutThreeTimesThenTheRequestIsRefused() throws {
        var net = RelaySquare()
        net.converge()
        net.request(5, from: a, to: d)
        for attempt in 1...3 {
            // D swallows everything: no Ack ever comes back.
            while let i = net.wire.firstIndex(where: { $0.to != d }) {
                net.wire.insert(net.wire.remove(at: i), at: 0)
                net.deliverOne()
            }
            net.wire.removeAll()
            #expect(net.answers(a).isEmpty, "attempt \(attempt)")
            net.now = net.now.advanced(byNanoseconds: 5_000_000_001)
            net.tick(a)
            net.tick(b)
            net.tick(c)
        }
        let answer = try #require(net.answers(a).first)
        #expect(answer.0 == 5)
        guard case .failure(let refusal) = answer.1 else { Issue.record("a silent destination delivered a key"); return }
        #expect(refusal.message.hasPrefix("key relay failed 3 times"), "\(refusal.message)")
        #expect(net.nodes[a]!.counters.failed == 3 && net.nodes[a]!.counters.started == 3)
        #expect(net.nodes[a]!.pending == 0)
    }

    @Test func duplicateAndLateMessagesDeliverNothingTwice() throws {
        var net = RelaySquare()
        net.converge()
        net.request(9, from: a, to: d)
        var seen: [(from: NodeID, to: NodeID, kind: MessageKind, payload: [UInt8])] = []
        var copied: Set<[UInt8]> = []
        while !net.wire.isEmpty {
            let m = net.wire[0]
            if copied.insert([m.kind.rawValue] + Array(m.to.rawValue.utf8) + m.payload).inserted {
                seen.append(m)
                net.wire.append(m)  // every message arrives twice, the copy after the others
            }
            net.deliverOne()
        }
        let keys = try #require(net.answers(a).first?.1).get()
        #expect(net.answers(a).count == 1 && net.stored(d) == keys && keys.count == 2)
        #expect(net.nodes[a]!.counters.started == 1 && net.nodes[a]!.counters.failed == 0)
        // Long after, every message of the relay arrives once more: nothing changes.
        net.now = net.now.advanced(byNanoseconds: 60_000_000_000)
        net.tickAll()
        net.wire.removeAll()
        let before = (net.keys, net.answers(a).count, net.stored(d).count)
        net.wire = seen
        net.deliverAll()
        #expect(net.answers(a).count == before.1 && net.stored(d).count == before.2)
        for node in [a, b, d] { #expect(net.keys[node]!.pools.mapValues(\.availableKeys) == before.0[node]!.pools.mapValues(\.availableKeys)) }
    }

    @Test func noPathIsAnsweredAtOnceAndCounted() throws {
        var net = RelaySquare(keysPerLink: 5)  // one key over the reserve of 4 per link
        net.converge()
        net.request(2, from: a, to: d, number: 4, size: 128)  // 512 bits: 2 keys a link
        guard case .failure(let refusal)? = net.answers(a).first?.1 else { Issue.record("relayed without keys"); return }
        #expect(refusal.message.contains("no usable path from A to D"), "\(refusal.message)")
        #expect(net.nodes[a]!.counters.noPath == 1 && net.nodes[a]!.counters.started == 0)
        #expect(net.wire.isEmpty)
    }

    @Test func aControlRelayIsRepliedAndShownAtBothEndsUntilItsTTL() throws {
        var net = RelaySquare()
        net.converge()
        _ = net.control(ControlRequest.relay(to: "D", bits: 512), at: a, client: [42])
        net.now = net.now.advanced(byNanoseconds: 3_000_000)
        net.deliverAll()
        let reply = try #require(net.effects[a]?.compactMap { d -> RelayReport? in
            if case .reply(let r, [42]) = d { r.relay } else { nil }
        }.first)
        #expect(reply.ok && reply.bits == 512 && reply.path == ["A", "B", "D"] && reply.latencyMs == 3)
        func show(_ node: NodeID) -> (RelayReport, BitVector, UInt64?)? {
            var net2 = net
            return net2.control(ControlRequest.relayShow(keyID: reply.keyID, salt: 5), at: node).compactMap { d in
                if case .show(let r, let key, let salt, _) = d { (r, key, salt) } else { nil }
            }.first
        }
        let atA = try #require(show(a)), atD = try #require(show(d))
        #expect(atA.1 == atD.1 && atA.1.count == 512 && atA.2 == 5 && atD.0.path == ["A", "B", "D"])
        #expect(show(b)?.1 == nil)  // a transit node holds nothing releasable
        // Forgotten after ten minutes.
        net.now = net.now.advanced(byNanoseconds: 600_000_000_001)
        net.tick(a)
        #expect(show(a)?.1 == nil)
        // Bad requests are answered with what is wrong.
        let bad = net.control(ControlRequest.relay(to: "A", bits: ControlRequest.defaultBits), at: a)
        #expect(bad.contains { if case .reply(let r, _) = $0 { r.error?.contains("not another node") == true } else { false } })
        let odd = net.control(ControlRequest.relay(to: "D", bits: 7), at: a)
        #expect(odd.contains { if case .reply(let r, _) = $0 { r.error?.contains("multiple of 8") == true } else { false } })
    }

    @Test func uncollectedApplicationKeysAreExpiredEveryTenSeconds() {
        var net = RelaySquare()
        func expiries() -> Int { (net.effects[a] ?? []).filter { $0 == .expireApplicationKeys(olderThanNs: 3_600_000_000_000) }.count }
        net.now = Instant(nanoseconds: 10_500_000_000)
        net.tick(a)
        #expect(expiries() == 1)
        net.now = Instant(nanoseconds: 20_400_000_000)
        net.tick(a)
        #expect(expiries() == 1)
        net.now = Instant(nanoseconds: 20_600_000_000)
        net.tick(a)
        #expect(expiries() == 2)
    }
}
