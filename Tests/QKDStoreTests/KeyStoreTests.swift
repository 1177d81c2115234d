import Foundation
import QKDCore
import GRDB
import QKDKeyPool
import QKDStore
import Testing

func temporaryDirectory() -> String {
    let dir = NSTemporaryDirectory() + "qkd-store-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func randomKeys(_ n: Int, seed: UInt64) -> [(id: KeyID, bits: BitVector)] {
    var g = Xoshiro256(seed: seed)
    return (0..<n).map { _ in (KeyID(randomHigh: g.next(), randomLow: g.next()), BitVector(words: [g.next(), g.next(), g.next(), g.next()], count: 256)) }
}

@Suite struct KeyStoreTests {
    @Test func journalledChangesSurviveReopening() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = randomKeys(500, seed: 1)
        do {
            let store = try KeyStore.open(directory: dir, node: "A")
            #expect(store.starts == 1)
            var pool = KeyPool()
            try pool.deposit(Array(keys[0..<300]), pending: false)
            try pool.deposit(Array(keys[300...]), pending: true)
            pool.confirm(keys[300..<350].map(\.id))
            pool.synchronise(peerHolds: Set(keys.map(\.id)).subtracting(keys[0..<10].map(\.id)))
            _ = pool.takeOldestForAuthentication()
            try store.apply(pool.drainJournal(), link: "A-B", bootstrap: true)
            try store.apply([], link: "other")
        }
        let store = try KeyStore.open(directory: dir, node: "A")
        #expect(store.starts == 2)
        #expect(try store.isBootstrapped(link: "A-B"))
        #expect(try !store.isBootstrapped(link: "other"))
        let loaded = try store.load(link: "A-B")
        // 10 synchronised away, one used for authentication; all pending keys were confirmed.
        #expect(loaded.count == 489)
        #expect(loaded.allSatisfy { !$0.pending })
        let byID = Dictionary(uniqueKeysWithValues: keys.map { ($0.id, $0.bits) })
        #expect(loaded.allSatisfy { byID[$0.id] == $0.bits })
        #expect(loaded.first?.id == keys[11].id, "deposit order is kept")
        #expect(try store.load(link: "nothing").isEmpty)
    }

    @Test func applicationKeysAreSealedKeptAcrossReopeningAndRemovedForGood() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = randomKeys(5, seed: 7).map {
            ApplicationKey(id: $0.id, master: "SAE-A", slave: "SAE-B", bits: $0.bits.slice(from: 0, length: 136), path: ["A", "R", "B"])
        }
        do {
            let store = try KeyStore.open(directory: dir, node: "B")
            try store.saveApplicationKeys(keys)
            try store.removeApplicationKeys([keys[1].id])
        }
        let store = try KeyStore.open(directory: dir, node: "B")
        #expect(try store.loadApplicationKeys() == [keys[0], keys[2], keys[3], keys[4]])
        try store.close()
        // The bits are sealed: they do not appear in the file, and a damaged row is refused.
        let file = dir + "/B.sqlite"
        var data = try Data(contentsOf: URL(fileURLWithPath: file))
        let needle = Data(keys[0].bits.bytes.prefix(12))
        #expect(data.range(of: needle) == nil)
        let sealedAt = try #require(data.range(of: Data("A>R>B".utf8), options: .backwards))
        data[sealedAt.upperBound + 20] ^= 0x01
        try data.write(to: URL(fileURLWithPath: file))
        let damaged = try KeyStore.open(directory: dir, node: "B")
        #expect { _ = try damaged.loadApplicationKeys() } throws: { ($0 as? StoreError)?.code == .corrupt }
    }

    /// A row edited to hand a key to another slave SAE fails authentication; a key ID stored
    /// twice is refused, the waiting key kept.
    @Test func applicationKeysAreBoundToTheirSAEsAndNeverOverwritten() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = randomKeys(2, seed: 8).map {
            ApplicationKey(id: $0.id, master: "SAE-A", slave: "SAE-B", bits: $0.bits.slice(from: 0, length: 64), path: ["A", "B"])
        }
        let store = try KeyStore.open(directory: dir, node: "B")
        try store.saveApplicationKeys(keys)
        let forged = ApplicationKey(id: keys[0].id, master: "SAE-A", slave: "SAE-B", bits: keys[1].bits, path: ["A", "B"])
        #expect(throws: StoreError.self) { try store.saveApplicationKeys([forged]) }
        #expect(try store.loadApplicationKeys() == keys)
        try store.close()
        // Redirect the first key to SAE-M: same length, so only the associated data differs.
        var data = try Data(contentsOf: URL(fileURLWithPath: dir + "/B.sqlite"))
        let slave = try #require(data.range(of: Data("SAE-B".utf8)))
        data.replaceSubrange(slave, with: Data("SAE-M".utf8))
        try data.write(to: URL(fileURLWithPath: dir + "/B.sqlite"))
        let edited = try KeyStore.open(directory: dir, node: "B")
        #expect { _ = try edited.loadApplicationKeys() } throws: { ($0 as? StoreError)?.code == .corrupt }
    }

    /// A master KME's key stock lives on a shelf of its own: kept across reopening, apart from
    /// the keys waiting for slaves, and a row moved from one shelf to the other fails
    /// authentication.
    @Test func stockedKeysAreKeptApartFromWaitingKeysAndBoundToTheirShelf() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = randomKeys(4, seed: 9).map {
            ApplicationKey(id: $0.id, master: "SAE-A", slave: "SAE-B", bits: $0.bits, path: ["A", "S", "B"])
        }
        do {
            let store = try KeyStore.open(directory: dir, node: "A")
            try store.saveApplicationKeys(Array(keys.prefix(3)), shelf: .stock)
            try store.saveApplicationKeys([keys[3]])
            try store.removeApplicationKeys([keys[0].id], shelf: .stock)
            try store.removeApplicationKeys([keys[1].id])  // not on this shelf: nothing removed
        }
        let store = try KeyStore.open(directory: dir, node: "A")
        #expect(try store.loadApplicationKeys(shelf: .stock) == [keys[1], keys[2]])
        #expect(try store.loadApplicationKeys() == [keys[3]])
        try store.close()
        // Copy a stocked row into the waiting table (SQLite, as an attacker with the file would).
        let db = try DatabaseQueue(path: dir + "/A.sqlite")
        try db.write { try $0.execute(sql: "INSERT INTO application_keys SELECT * FROM stock_keys LIMIT 1") }
        try db.close()
        let moved = try KeyStore.open(directory: dir, node: "A")
        #expect { _ = try moved.loadApplicationKeys() } throws: { ($0 as? StoreError)?.code == .corrupt }
        #expect(try moved.loadApplicationKeys(shelf: .stock).count == 2)
    }

    /// A key's kind is stored with it and sealed into its associated data: a hybrid key edited
    /// to read as a QKD key fails authentication; a store from before kinds gains the column.
    @Test func aKeysKindIsKeptAndBoundToItsRow() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keys = randomKeys(2, seed: 10).map {
            ApplicationKey(id: $0.id, master: "SAE-A", slave: "SAE-B", bits: $0.bits, path: ["A", "B"])
        }
        var hybrid = keys[1]
        hybrid.kind = "hybrid"
        do {
            let store = try KeyStore.open(directory: dir, node: "B")
            try store.saveApplicationKeys([keys[0], hybrid])
        }
        let store = try KeyStore.open(directory: dir, node: "B")
        #expect(try store.loadApplicationKeys().map(\.kind) == ["qkd", "hybrid"])
        try store.close()
        let db = try DatabaseQueue(path: dir + "/B.sqlite")
        try db.write { try $0.execute(sql: "UPDATE application_keys SET kind = 'qkd' WHERE kind = 'hybrid'") }
        try db.close()
        let edited = try KeyStore.open(directory: dir, node: "B")
        #expect { _ = try edited.loadApplicationKeys() } throws: { ($0 as? StoreError)?.code == .corrupt }
        try edited.close()
        // A store whose tables have no kind column (as before): opened, its rows qkd.
        let old = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: old) }
        do {
            let store = try KeyStore.open(directory: old, node: "B")
            try store.saveApplicationKeys([keys[0]])
        }
        let legacy = try DatabaseQueue(path: old + "/B.sqlite")
        try legacy.write { try $0.execute(sql: "ALTER TABLE application_keys DROP COLUMN kind") }
        try legacy.close()
        let reopened = try KeyStore.open(directory: old, node: "B")
        #expect(try reopened.loadApplicationKeys() == [keys[0]])
    }

    @Test func theKeyEncryptionKeyIsPrivateAndRequired() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try KeyStore.open(directory: dir, node: "A")
        let kek = "\(dir)/A.kek"
        let mode = try FileManager.default.attributesOfItem(atPath: kek)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: kek)
        #expect { _ = try KeyStore.open(directory: dir, node: "A") } throws: { e in
            (e as? StoreError)?.code == .wrongKey && "\(e)".contains("A.kek") && "\(e)".contains("0600")
        }
        // Another KEK does not open the store.
        try FileManager.default.removeItem(atPath: kek)
        #expect(FileManager.default.createFile(atPath: kek, contents: Data(repeating: 7, count: 32), attributes: [.posixPermissions: 0o600]))
        #expect { _ = try KeyStore.open(directory: dir, node: "A") } throws: { e in
            (e as? StoreError)?.code == .wrongKey && "\(e)".contains("A.sqlite")
        }
        try FileManager.default.removeItem(atPath: kek)
        #expect { _ = try KeyStore.open(directory: dir, node: "A") } throws: { e in (e as? StoreError)?.code == .wrongKey }
    }

    @Test(arguments: ["truncated", "garbage", "flipped"])
    func aDamagedDatabaseIsRefusedNamingTheFile(damage: String) throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let store = try KeyStore.open(directory: dir, node: "N")
            var pool = KeyPool()
            try pool.deposit(randomKeys(3000, seed: 2), pending: false)
            try store.apply(pool.drainJournal(), link: "N-M", bootstrap: true)
        }
        // Fold the WAL into the main file, as a clean shutdown would.
        let path = "\(dir)/N.sqlite"
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        switch damage {
        case "truncated": data = data.prefix(data.count / 2)
        case "garbage": data = Data(repeating: 0x5A, count: data.count)
        default:
            // Flip one byte inside a sealed key near the end of the file.
            data[data.count - 200] ^= 0x01
        }
        try data.write(to: URL(fileURLWithPath: path))
        #expect {
            let store = try KeyStore.open(directory: dir, node: "N")
            _ = try store.load(link: "N-M")
        } throws: { e in
            guard let e = e as? StoreError else { return false }
            return e.code == .corrupt && e.message.contains(path)
        }
    }
}
