import QKDTestKit
import Foundation
import QKDCore
import QKDLaunch
import QKDWire
import Testing

/// Key pools that survive `kill -9`: real qkd-node processes, real SQLite stores.
@Suite(.serialized) struct PersistenceTests {
    /// Committed keys at the `a` end of every link (available + pending keys are what a
    /// restart must keep; generation shows in `generated_bits_total`).
    static func generated(_ network: Network) -> [String: UInt64] {
        Dictionary(network.pools().links.map { l in (l.link, l.ends.map(\.generatedBitsTotal).max() ?? 0) },
                   uniquingKeysWith: { a, _ in a })
    }

    /// Sends `signal` to a node and waits (5 s at most) until it is gone.
    static func signal(_ network: Network, _ node: NodeID, _ signal: Int32) throws {
        let pid = try #require(network.recordedPID(node))
        kill(pid, signal)
        Processes.waitUntilGone([pid], seconds: 5)
        Processes.reap(pid)
    }

    static func allSynchronised(_ network: Network) -> Bool {
        network.pools().links.allSatisfy { $0.ends.count == 2 && $0.ends.allSatisfy { $0.synchronised && $0.active } }
    }

    @Test func killingTheRelayAtRandomMomentsLosesAndDesynchronisesNothing() throws {
        let network = try Harness.up("line-3.yaml", label: "crash")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        let seed = UInt64(getpid())
        print("kill loop seed \(seed)")
        var g = Xoshiro256(seed: seed)
        // 60 s: the first distilled blocks beyond the 256 pre-shared keys (a block takes about 3 s on these 25 km links).
        #expect(eventually(within: 60) { network.pools().links.allSatisfy { $0.storedKeys >= 300 } })
        let relay = NodeID("Relay")
        for round in 0..<10 {
            // A random moment: after a random amount of new key on the first link.
            let start = Self.generated(network)["Alice-Relay"] ?? 0
            let more = 256 * (1 + g.nextBounded(200))
            #expect(eventually(within: 60) { (Self.generated(network)["Alice-Relay"] ?? 0) >= start + more }, "round \(round): no key")
            let before = network.pools().links.map(\.storedKeys)
            try Self.signal(network, relay, SIGKILL)
            let restarted = try network.startNode(relay)
            // 30 s: a restarted node reads its store and hears both neighbours (about a second when the machine is idle).
            try network.waitReady([relay: restarted], timeoutSeconds: 30)
            // 30 s: one PoolSync offer and answer per link; an unanswered one is repeated every 2 s.
            #expect(eventually(within: 30) { Self.allSynchronised(network) }, "round \(round): pools not agreed after restart")
            // Agreement drops only what was in flight (a round or two), never the pool.
            let after = network.pools().links.map(\.storedKeys)
            for (b, a) in zip(before, after) { #expect(a + 1500 >= b, "round \(round): pool fell from \(b) to \(a) keys") }
        }
        // Pools keep growing after the last restart, on both links.
        let after = Self.generated(network)
        #expect(eventually(within: 60) {
            let now = Self.generated(network)
            return now.allSatisfy { $0.value > (after[$0.key] ?? 0) + 100_000 }
        }, "pools stopped growing")
        let audit = network.audit()
        #expect(audit.ok, "\(audit)")
        #expect(audit.mismatchedKeys == 0 && audit.orphanKeys == 0)
        #expect(audit.linksChecked == 2)
        #expect(audit.links.allSatisfy { $0.keysMatched >= 300 })
        // The relay's store counted ten restarts (eleven openings).
        let log = try String(contentsOfFile: network.layout.logPath(relay), encoding: .utf8)
        #expect(log.contains("starts=11"))
        passed = true
    }

    @Test func sigtermWhileEveryLinkDistilsStopsEveryNodeCleanlyAndTheStoresReopen() throws {
        let network = try Harness.up("line-3.yaml", label: "sigterm")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // Every link running a session and past its first distilled keys (30 s: line-3 distils
        // its first block in about 3 s at time scale 1).
        #expect(eventually(within: 30) {
            Self.allSynchronised(network) && Self.generated(network).values.allSatisfy { $0 > 0 } && Self.generated(network).count == 2
        })
        let pids = network.topology.nodes.compactMap { network.recordedPID($0.id) }
        #expect(pids.count == 3)
        let sent = Date()
        for pid in pids { kill(pid, SIGTERM) }
        var states: [Int32: Processes.ChildState] = [:]
        // 10 s: only to end the test if a node hangs; the exit codes and the time are the check.
        let ended = eventually(within: 10) {
            for pid in pids where states[pid] == nil {
                let state = Processes.childState(pid)
                if state != .running { states[pid] = state }
            }
            return states.count == pids.count
        }
        let seconds = Date().timeIntervalSince(sent)
        #expect(ended && states.values.allSatisfy { $0 == .exited(0) }, "\(states)")
        #expect(seconds < 2, "graceful shutdown took \(seconds) s")
        for node in network.topology.nodes {
            let log = try String(contentsOfFile: network.layout.logPath(node.id), encoding: .utf8)
            // In order: the loop stops, the worker is joined, the KME drains, the store closes.
            let order = ["shutting down", "stopped", "exiting"].map { log.range(of: $0, options: .backwards)?.lowerBound }
            #expect(order.allSatisfy { $0 != nil } && order == order.sorted { $0! < $1! }, "\(node.id): \(order)")
            // A clean close folds the write-ahead log into the database.
            #expect(!FileManager.default.fileExists(atPath: "\(network.layout.storeDirectory)/\(node.id).sqlite-wal"))
        }
        // The same run directory again: every store opens, the pools agree, nothing is lost.
        var restarted: [NodeID: Int32] = [:]
        for node in network.topology.nodes { restarted[node.id] = try network.startNode(node.id) }
        // 30 s: every node reads its store and hears its neighbours (about a second when idle).
        try network.waitReady(restarted, timeoutSeconds: 30)
        // 30 s: one PoolSync offer and answer per link; an unanswered one is repeated every 2 s.
        #expect(eventually(within: 30) { Self.allSynchronised(network) })
        let audit = network.audit()
        #expect(audit.ok && audit.linksChecked == 2 && audit.orphanKeys == 0, "\(audit)")
        passed = true
    }

    @Test func aNodeRefusesToStartFromADamagedStoreNamingTheFile() throws {
        let network = try Harness.up("line-3.yaml", label: "corrupt")
        defer { Harness.tearDown(network) }
        // 60 s: a few distilled blocks (about 3 s each on these 25 km links) make the store file large enough to damage.
        #expect(eventually(within: 60) { network.pools().links.allSatisfy { $0.storedKeys >= 1000 } })
        let relay = NodeID("Relay")
        try Self.signal(network, relay, SIGTERM)
        let path = "\(network.layout.storeDirectory)/Relay.sqlite"
        // A clean shutdown folded the write-ahead log into the file: cut the file in half.
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(data.count > 64 * 1024)
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        let restarted = try network.startNode(relay)
        var exit: Processes.ChildState = .running
        // 30 s: the node opens the damaged store and exits at once; the bound is for a loaded machine.
        #expect(eventually(within: 30) {
            exit = Processes.childState(restarted)
            return exit != .running
        })
        #expect(exit == .exited(3), "\(exit)")
        let output = try String(contentsOfFile: network.layout.outputPath(relay), encoding: .utf8)
        #expect(output.contains(path), "\(output)")
        #expect(output.contains("key store"))
        // The neighbours never see the relay up again.
        #expect(network.status().nodes.first { $0.id == "Relay" }?.state == .down)
    }

    /// A full disk: the stores on a small tmpfs. The first node whose write fails logs why,
    /// stops serving and exits 4; no store is damaged: moved back to a disk with room, every
    /// node reopens its store, the pools agree and the audit passes.
    @Test func aFullDiskStopsTheNodeWithAClearMessageAndDamagesNoStore() throws {
        let network = try Harness.up("line-3.yaml", label: "fulldisk")
        let layout = network.layout, store = network.layout.storeDirectory, saved = network.layout.root + "/store-saved"
        var mounted = false, passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            _ = network.down()
            if mounted { _ = try? Harness.command("/bin/umount", [store], scratch: layout.root) }
            Harness.tearDown(network)
        }
        let fm = FileManager.default
        func stopAll() {
            let pids = network.topology.nodes.compactMap { network.recordedPID($0.id) }.filter { Processes.childState($0) == .running }
            for pid in pids { kill(pid, SIGTERM) }
            // 10 s: only to end the test if a node hangs on SIGTERM.
            Processes.waitUntilGone(pids, seconds: 10)
            for pid in pids { Processes.reap(pid) }
        }
        func move(_ from: String, _ to: String) throws {
            try fm.createDirectory(atPath: to, withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: from) { try fm.moveItem(atPath: "\(from)/\(name)", toPath: "\(to)/\(name)") }
        }
        func restartAll() throws {
            var started: [NodeID: Int32] = [:]
            for node in network.topology.nodes { started[node.id] = try network.startNode(node.id) }
            // 30 s: every node reads its store and hears its neighbours (about a second when idle).
            try network.waitReady(started, timeoutSeconds: 30)
        }
        // Every link past its first block (about 3 s on these 25 km links), then stopped cleanly.
        #expect(eventually(within: 60) { Self.allSynchronised(network) && Self.generated(network).values.allSatisfy { $0 > 0 } })
        stopAll()
        // The stores onto a tmpfs with 512 KiB to spare: room to open the three stores (a
        // write-ahead log and its 32 KiB index each), not for many distilled blocks (each
        // about 450 keys per link end).
        try move(store, saved)
        let used = try fm.contentsOfDirectory(atPath: saved).reduce(0) { sum, name in
            sum + ((try fm.attributesOfItem(atPath: "\(saved)/\(name)")[.size] as? NSNumber)?.intValue ?? 0)
        }
        let size = (used / 4096 + 128) * 4096
        let mount = try Harness.command("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size),mode=0700", "tmpfs", store], scratch: layout.root)
        try #require(mount.status == 0, "this test needs to mount a tmpfs (root or CAP_SYS_ADMIN): \(mount.output)")
        mounted = true
        try move(saved, store)
        try restartAll()
        // 60 s: the next block or two of each link (about 3 s each at time scale 1) fill the
        // 512 KiB; measured: the whole test takes 10-14 s on an idle machine. The bound is the one for a
        // first block on a loaded machine, as above.
        var failed: NodeID?
        var state: Processes.ChildState = .running
        #expect(eventually(within: 60) {
            for node in network.topology.nodes {
                guard let pid = network.recordedPID(node.id) else { continue }
                let s = Processes.childState(pid)
                if s != .running { (failed, state) = (node.id, s); return true }
            }
            return false
        }, "no node stopped on the full disk")
        let node = try #require(failed)
        #expect(state == .exited(4), "\(node): \(state)")
        let output = try String(contentsOfFile: layout.outputPath(node), encoding: .utf8)
        #expect(output.contains("key store write failed, stopping") && output.contains("full"), "\(output)")
        let log = try String(contentsOfFile: layout.logPath(node), encoding: .utf8)
        #expect(log.contains("key store write failed: stopping"))
        // It serves nothing: its neighbours see it down.
        #expect(eventually(within: 30) { network.status().nodes.first { $0.id == node.rawValue }?.state == .down })
        // The stores back on a disk with room: every node opens its own, nothing is lost.
        stopAll()
        try move(store, saved)
        let unmount = try Harness.command("/bin/umount", [store], scratch: layout.root)
        #expect(unmount.status == 0, "\(unmount.output)")
        mounted = unmount.status != 0
        try move(saved, store)
        try restartAll()
        // 30 s: one PoolSync offer and answer per link; an unanswered one is repeated every 2 s.
        #expect(eventually(within: 30) { Self.allSynchronised(network) })
        let audit = network.audit()
        #expect(audit.ok && audit.linksChecked == 2 && audit.orphanKeys == 0 && audit.mismatchedKeys == 0, "\(audit)")
        #expect(audit.links.allSatisfy { $0.keysMatched >= 256 }, "\(audit)")
        passed = true
    }

    /// A node whose store and KEK are lost (killed, the files gone): `qkdctl node reset`
    /// provisions each of its links afresh at both ends (new pre-shared keys from the OS random
    /// source, installed at the running neighbours through the control channel), the node
    /// starts with a new store, and its links agree and distil again; the audit passes. A
    /// reset with a neighbour down is refused, naming it.
    @Test func aNodeWhoseStoreIsLostIsResetAndItsLinksDistilAgain() throws {
        let network = try Harness.up("line-3.yaml", label: "reset")
        var passed = false
        defer {
            if !passed { Harness.dumpLogs(network) }
            Harness.tearDown(network)
        }
        // 60 s: every link past its first block (about 3 s on these 25 km links).
        #expect(eventually(within: 60) { Self.allSynchronised(network) && Self.generated(network).values.allSatisfy { $0 > 0 } })
        let relay = NodeID("Relay")
        try Self.signal(network, relay, SIGKILL)
        let prefix = "\(network.layout.storeDirectory)/Relay"
        for suffix in [".sqlite", ".sqlite-wal", ".sqlite-shm", ".kek"] { try? FileManager.default.removeItem(atPath: prefix + suffix) }
        #expect(!FileManager.default.fileExists(atPath: prefix + ".sqlite") && !FileManager.default.fileExists(atPath: prefix + ".kek"))
        let qkdctl = "\(Harness.binDirectory)/qkdctl"
        let reset = try Harness.command(qkdctl, ["node", "reset", "Relay", "--run-dir", network.layout.root], scratch: network.layout.root)
        #expect(reset.status == 0 && reset.output.contains("reset Relay: new pre-shared keys on 2 link(s)"), "\(reset.output)")
        // 60 s: the new Relay hears both neighbours, each link agrees its new pool and distils
        // a block from it (a few seconds each when the machine is idle).
        func distilledAtRelay() -> Bool {
            network.pools().links.allSatisfy { link in
                link.ends.count == 2 && link.ends.allSatisfy { $0.synchronised && $0.active }
                    && (link.ends.first { $0.role == (link.link == "Alice-Relay" ? "bob" : "alice") }?.generatedBitsTotal ?? 0) > 0
            }
        }
        #expect(eventually(within: 60) { distilledAtRelay() }, "the reset node's links distil again")
        let audit = network.audit()
        #expect(audit.ok && audit.linksChecked == 2 && audit.mismatchedKeys == 0 && audit.orphanKeys == 0, "\(audit)")
        let log = try String(contentsOfFile: network.layout.logPath(relay), encoding: .utf8)
        #expect(log.contains("starts=1"), "the reset node opened a new store")
        for neighbour in ["Alice", "Bob"] {
            let theirs = try String(contentsOfFile: network.layout.logPath(NodeID(neighbour)), encoding: .utf8)
            #expect(theirs.contains("link re-provisioned from its bootstrap file"), "\(neighbour)")
        }
        // With Bob down the reset is refused before anything changes, naming him.
        try Self.signal(network, NodeID("Bob"), SIGTERM)
        let refused = try Harness.command(qkdctl, ["node", "reset", "Relay", "--run-dir", network.layout.root], scratch: network.layout.root)
        #expect(refused.status != 0 && refused.output.contains("Bob not running"), "\(refused.output)")
        #expect(network.recordedPID(relay).map { Processes.isAlive($0) } == true, "the refused reset left the Relay running")
        passed = true
    }
}
