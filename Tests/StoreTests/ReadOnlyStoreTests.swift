import CSQLite
import Foundation
import Testing
@testable import Store
import TestSupport

@Suite(.serialized) struct ReadOnlyStoreTests {
    /// Defect 5: a rollback-journal database was switched to WAL (its header changed) before being refused.
    @Test func foreignRollbackJournalDatabaseIsRefusedUntouched() throws {
        let dir = try TempDir()
        let path = dir.file("other.sqlite")
        var h: OpaquePointer?
        #expect(sqlite3_open(path, &h) == SQLITE_OK)
        #expect(sqlite3_exec(h, "PRAGMA journal_mode = DELETE; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);", nil, nil, nil) == SQLITE_OK)
        sqlite3_close(h)
        // An mtime in the past, so that any write shows.
        let past = Date(timeIntervalSince1970: 1_600_000_000)
        try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        for readOnly in [false, true] {
            do {
                _ = try FeatureStore(path: path, readOnly: readOnly)
                Issue.record("someone else's database was opened as a store (readOnly \(readOnly))")
            } catch let e as StoreError {
                guard case .notAProbeStore = e else { Issue.record("unexpected error \(e)"); continue }
            }
            let after = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(after == before, "the file changed (readOnly \(readOnly)): header bytes 18-19 \(Array(before[18...19])) -> \(Array(after[18...19]))")
            let mtime = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date
            #expect(mtime == past, "mtime changed (readOnly \(readOnly))")
            #expect(!FileManager.default.fileExists(atPath: path + "-wal") && !FileManager.default.fileExists(atPath: path + "-shm"))
        }
    }

    /// Defect 6: a store in a directory that is not writable failed every reading command with
    /// "SQLite error 1544 ... PRAGMA schema_version" (SQLite cannot create the -shm file).
    @Test(.enabled(if: chattrWorks, "needs chattr +i (e2fsprogs) on the temporary directory's file system"))
    func storeInAReadOnlyDirectoryCanBeRead() throws {
        let dir = try TempDir()
        let path = dir.file("store.sqlite")
        do {
            let store = try FeatureStore(path: path)
            let b = try store.backbone(architecture: "mobilenet_v2", weightsSHA256: sha("w"), dimension: 4)
            try store.saveHead(HeadRecord(name: "h", backboneID: b.id, classes: ["a", "b"], settingsJSON: "{}", metricsJSON: "[]",
                                          weights: [Float](repeating: 0.5, count: 10)))
        }
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(chattrImmutable(dir.url.path, true))
        defer { chattrImmutable(dir.url.path, false) }
        // Reading commands (store info, heads, eval, export) open read-only.
        let reader = try FeatureStore(path: path, readOnly: true)
        #expect(try reader.backbones().count == 1)
        #expect(try reader.heads().map(\.name) == ["h"])
        #expect(try reader.schemaVersion() == Schema.currentVersion)
        // Commands that may write (train, predict, query) open it too, and say so before writing.
        let writer = try FeatureStore(path: path)
        #expect(try writer.heads().count == 1)
        do {
            try writer.saveHead(HeadRecord(name: "h2", backboneID: 1, classes: ["a", "b"], settingsJSON: "{}", metricsJSON: "[]",
                                           weights: [Float](repeating: 0.5, count: 10)))
            Issue.record("a head was saved in a read-only directory")
        } catch {
            #expect("\(error)".contains("is read-only") && "\(error)".contains("nothing was changed"), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    }

    /// A WAL store in an unwritable directory whose -wal file still holds transactions: reading
    /// past them (immutable=1) would show an old state, so it is refused with what to do.
    @Test(.enabled(if: chattrWorks, "needs chattr +i (e2fsprogs) on the temporary directory's file system"))
    func walWithTransactionsInAReadOnlyDirectoryIsRefusedWithAHint() throws {
        let dir = try TempDir()
        let path = dir.file("store.sqlite")
        let copy = dir.file("copy")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        do {
            let store = try FeatureStore(path: path)
            try store.database.execute("PRAGMA wal_autocheckpoint = 0")
            _ = try store.backbone(architecture: "mobilenet_v2", weightsSHA256: sha("w"), dimension: 4)
            // A copy of the store and its -wal file while open (as a backup or a crash would leave them), without -shm.
            try FileManager.default.copyItem(atPath: path, toPath: copy + "/store.sqlite")
            try FileManager.default.copyItem(atPath: path + "-wal", toPath: copy + "/store.sqlite-wal")
        }
        #expect(chattrImmutable(copy, true))
        defer { chattrImmutable(copy, false) }
        do {
            _ = try FeatureStore(path: copy + "/store.sqlite", readOnly: true)
            Issue.record("a store with transactions in its -wal file was read past them")
        } catch let e as StoreError {
            #expect(e == .unreadableWAL(path: copy + "/store.sqlite"))
            #expect(e.description.contains("Make the directory writable once"))
        }
    }

    /// A read-only store file in a writable directory: reading works, writing is refused up front.
    @Test(.enabled(if: chattrWorks, "needs chattr +i (e2fsprogs) on the temporary directory's file system"))
    func readOnlyStoreFileCanBeRead() throws {
        let dir = try TempDir()
        let path = dir.file("store.sqlite")
        do { _ = try FeatureStore(path: path).backbone(architecture: "mobilenet_v2", weightsSHA256: sha("w"), dimension: 4) }
        #expect(chattrImmutable(path, true))
        defer { chattrImmutable(path, false) }
        #expect(try FeatureStore(path: path, readOnly: true).backbones().count == 1)
        let store = try FeatureStore(path: path)
        #expect(try store.backbones().count == 1)
        do {
            _ = try store.backbone(architecture: "resnet18", weightsSHA256: sha("v"), dimension: 4)
            Issue.record("a backbone was registered in a read-only file")
        } catch {
            #expect("\(error)".lowercased().contains("readonly") || "\(error)".contains("read-only"), "\(error)")
        }
    }
}
