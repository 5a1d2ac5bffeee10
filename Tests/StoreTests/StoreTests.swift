import CSQLite
import Foundation
import Testing
import Reproducible
@testable import Store
import TestSupport

/// A small labelled data set: n images of dimension d, paths "split/label/i.jpg".
func sampleBatch(_ range: Range<Int>, d: Int, views: Int = 0, seed: UInt64 = 1) -> Batch {
    var batch = Batch()
    for i in range {
        var rng = SplitMix64(seed: UInt64(i) &+ seed &* 1000)
        let h = sha("image \(i)")
        let split = i % 4 == 0 ? "val" : "train"
        let label = i % 2 == 0 ? "ants" : "bees"
        batch.images.append(ImageRecord(sha256: h, width: 100 + i, height: 50 + i, byteSize: 1000 + i))
        batch.samples.append(SampleRecord(path: "\(split)/\(label)/\(i).jpg", sha256: h, label: label, split: split, mtimeNS: Int64(i)))
        for v in 0...views {
            batch.features.append(FeatureRecord(sha256: h, transform: v == 0 ? "val" : "rrc-flip", view: v,
                                                vector: (0..<d).map { _ in rng.nextFloat() * 4 - 1 }))
        }
    }
    return batch
}

func count(_ store: FeatureStore, _ table: String) throws -> Int {
    Int(try store.database.scalarInt("SELECT count(*) FROM \(table)") ?? -1)
}

@Test func schemaCreation() throws {
    let dir = try TempDir()
    let path = dir.file("sub/dir/features.sqlite")  // directories are created
    let store = try FeatureStore(path: path)
    #expect(try store.schemaVersion() == Schema.currentVersion)
    #expect(try store.database.scalarInt("PRAGMA application_id") == 0x5052_4F42)
    #expect(try store.database.scalarText("PRAGMA journal_mode") == "wal")
    #expect(try store.database.scalarInt("PRAGMA foreign_keys") == 1)
    #expect(try store.database.scalarInt("PRAGMA busy_timeout")! >= 5000)
    #expect(try store.database.scalarInt("PRAGMA page_size") == 32768)
    let tables = try store.database.query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name") { $0.string(0)! }
    #expect(tables == ["backbones", "failures", "features", "heads", "images", "meta", "quantizations", "samples"])
    #expect(try store.integrityProblems().isEmpty)
    // Reopening is a no-op; a read-only connection works too.
    _ = try FeatureStore(path: path)
    let ro = try FeatureStore(path: path, readOnly: true)
    #expect(try ro.schemaVersion() == Schema.currentVersion)
    #expect(throws: StoreError.self) { try FeatureStore(path: dir.file("absent.sqlite"), readOnly: true) }
}

@Test func newerSchemaIsRefused() throws {
    let dir = try TempDir()
    let path = dir.file("s.sqlite")
    do { _ = try FeatureStore(path: path) }
    do {
        let raw = try Database(path: path)
        try raw.execute("PRAGMA user_version = 7")
    }
    do {
        _ = try FeatureStore(path: path)
        Issue.record("a store of version 7 was opened")
    } catch let e as StoreError {
        #expect(e == .newerSchema(path: path, found: 7, supported: Schema.currentVersion))
        #expect(e.description.contains("version 7"))
        #expect(e.description.contains("upgrade probe"))
    }
    #expect(throws: StoreError.self) { try FeatureStore(path: path, readOnly: true) }
}

@Test func foreignFilesAreRefused() throws {
    let dir = try TempDir()
    // Someone else's SQLite database.
    let other = dir.file("other.sqlite")
    do { try Database(path: other).execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)") }
    #expect(throws: StoreError.notAProbeStore(path: other, reason: "it has 1 schema objects and no probe schema version")) {
        try FeatureStore(path: other)
    }
    #expect(try Database(path: other).scalarInt("SELECT count(*) FROM t") == 1)  // untouched
    // Not a database at all.
    let text = dir.file("notes.txt")
    try Data(String(repeating: "hello, not a database\n", count: 100).utf8).write(to: URL(fileURLWithPath: text))
    do {
        _ = try FeatureStore(path: text)
        Issue.record("a text file was opened as a store")
    } catch let e as StoreError {
        guard case .notAProbeStore = e else { Issue.record("unexpected error \(e)"); return }
    }
}

@Test func migrationFromAHandMadeV0Store() throws {
    let dir = try TempDir()
    let path = dir.file("v0.sqlite")
    // "Version 0": an empty database file made by hand, with the sqlite3 C API.
    var h: OpaquePointer?
    #expect(sqlite3_open(path, &h) == SQLITE_OK)
    #expect(sqlite3_exec(h, "PRAGMA user_version = 0; VACUUM;", nil, nil, nil) == SQLITE_OK)
    sqlite3_close(h)
    let store = try FeatureStore(path: path)
    #expect(try store.schemaVersion() == Schema.currentVersion)
    let b = try store.backbone(architecture: "a", weightsSHA256: sha("w"), dimension: 4)
    try store.insertBatch(sampleBatch(0..<3, d: 4), backbone: b)

    // A later version's migration (a test-only step after the current version) runs in order and keeps the data.
    let next = Schema.currentVersion + 1
    let v2 = Schema.Migration(version: next, sql: "ALTER TABLE samples ADD COLUMN note TEXT; CREATE TABLE extra(x);")
    let migrated = try FeatureStore(path: path, options: Database.Options(), migrations: Schema.migrations + [v2])
    #expect(try migrated.schemaVersion() == next)
    #expect(try count(migrated, "samples") == 3)
    #expect(try migrated.database.scalarInt("SELECT count(*) FROM pragma_table_info('samples') WHERE name = 'note'") == 1)
    // ... and this probe (the current version) now refuses it.
    #expect(throws: StoreError.newerSchema(path: path, found: next, supported: Schema.currentVersion)) { try FeatureStore(path: path) }

    // A failing step leaves the store exactly at its previous version.
    let path2 = dir.file("fail.sqlite")
    do {
        let s = try FeatureStore(path: path2)
        try s.insertBatch(sampleBatch(0..<2, d: 4), backbone: try s.backbone(architecture: "a", weightsSHA256: sha("w"), dimension: 4))
    }
    let bad = Schema.Migration(version: next, sql: "CREATE TABLE half_done(x); INSERT INTO no_such_table VALUES (1);")
    #expect(throws: StoreError.self) {
        try FeatureStore(path: path2, options: Database.Options(), migrations: Schema.migrations + [bad])
    }
    let after = try FeatureStore(path: path2)
    #expect(try after.schemaVersion() == Schema.currentVersion)
    #expect(try after.database.scalarInt("SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'") == 0)
    #expect(try count(after, "samples") == 2)
}

@Test func contentAddressingRenameAndDuplicates() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "resnet18", weightsSHA256: sha("weights"), dimension: 8)
    #expect(try store.backbone(architecture: "resnet18", weightsSHA256: sha("weights"), dimension: 8) == b)
    #expect(throws: StoreError.self) { try store.backbone(architecture: "resnet18", weightsSHA256: sha("weights"), dimension: 9) }
    let other = try store.backbone(architecture: "resnet18", weightsSHA256: sha("other weights"), dimension: 8)
    #expect(other.id != b.id)

    var batch = sampleBatch(0..<4, d: 8)
    // A duplicate file: same content under another path; its features are computed once.
    let dupSHA = batch.images[1].sha256
    batch.samples.append(SampleRecord(path: "train/bees/copy-of-1.jpg", sha256: dupSHA, label: "bees", split: "train"))
    try store.insertBatch(batch, backbone: b)
    #expect(try count(store, "images") == 4)
    #expect(try count(store, "samples") == 5)
    #expect(try count(store, "features") == 4)
    #expect(try store.sample(path: "train/bees/copy-of-1.jpg")?.imageID == store.sample(path: "train/bees/1.jpg")?.imageID)

    // Rename: the sample row moves, nothing is missing afterwards.
    try store.renameSample(from: "train/bees/3.jpg", to: "train/bees/renamed.jpg")
    #expect(try store.sample(path: "train/bees/3.jpg") == nil)
    let moved = try #require(try store.sample(path: "train/bees/renamed.jpg"))
    #expect(moved.sha256 == sha("image 3"))
    #expect(try store.missingFeatures(backbone: b, keys: [FeatureKey(sha256: moved.sha256, transform: "val", view: 0)]).isEmpty)
    // A moved file rescanned: upsertSamples + removeSamples, no features touched.
    try store.upsertSamples([SampleRecord(path: "elsewhere/2.jpg", sha256: sha("image 2"), label: "ants", split: nil)])
    #expect(try store.removeSamples(paths: ["val/ants/0.jpg", "no/such/path"]) == 1)
    #expect(try count(store, "features") == 4)
    #expect(throws: StoreError.self) {
        try store.upsertSamples([SampleRecord(path: "x", sha256: sha("unknown"), label: "a", split: nil)])
    }
    // Features of other weights are separate: everything is missing for `other`.
    let keys = try store.samples().map { FeatureKey(sha256: $0.sha256, transform: "val", view: 0) }
    #expect(try store.missingFeatures(backbone: other, keys: keys).count == keys.count)
    #expect(try store.imageID(sha256OrPrefix: String(sha("image 2").prefix(10))) == store.sample(path: "elsewhere/2.jpg")?.imageID)
    #expect(try store.integrityProblems().isEmpty)
}

@Test func missingPairsInBulk() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 3)
    try store.insertBatch(sampleBatch(0..<50, d: 3, views: 2), backbone: b)  // views 0, 1, 2 of images 0..<50
    var keys: [FeatureKey] = []
    var expected: [FeatureKey] = []
    for i in 0..<80 {
        for v in 0...3 {
            let k = FeatureKey(sha256: sha("image \(i)"), transform: v == 0 ? "val" : "rrc-flip", view: v)
            keys.append(k)
            if i >= 50 || v == 3 { expected.append(k) }
        }
    }
    keys.append(FeatureKey(sha256: sha("image 1"), transform: "other-transform", view: 1))
    expected.append(keys.last!)
    #expect(try store.missingFeatures(backbone: b, keys: keys) == expected)
    #expect(try store.knownImages([sha("image 3"), sha("image 99")]) == [sha("image 3")])
}

@Test func halfPrecisionStorage() throws {
    // (The conversion itself: ReproducibleTests.)
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 1280)
    let batch = sampleBatch(0..<10, d: 1280)
    let result = try store.insertBatch(batch, backbone: b, dtype: .f16)
    #expect(result.vectorBytes == 10 * 1280 * 2)
    #expect(result.bytesSavedByF16 == 10 * 1280 * 2)
    #expect(try store.database.scalarInt("SELECT sum(length(vector)) FROM features") == 10 * 1280 * 2)
    for f in batch.features {
        let back = try #require(try store.vector(sha256: f.key.sha256, backbone: b))
        for (x, y) in zip(f.vector, back) { #expect(abs(x - y) <= abs(x) * 1.0 / 2048 + 6e-8) }
    }
    let info = try store.info()
    #expect(info.backbones.first?.savedByF16 == Int64(10 * 1280 * 2))
    #expect(info.render().contains("f16 saves"))
    // Out of half's range: refused, nothing stored.
    var big = sampleBatch(10..<11, d: 1280)
    big.features[0].vector[5] = 1e6
    #expect(throws: StoreError.self) { try store.insertBatch(big, backbone: b, dtype: .f16) }
    #expect(try count(store, "images") == 10)
}

@Test func badBatchesLeaveNoTrace() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 16)
    try store.insertBatch(sampleBatch(0..<5, d: 16), backbone: b)
    let before = try store.canonicalDigest()

    var wrongDim = sampleBatch(5..<10, d: 16)
    wrongDim.features[3].vector.removeLast()
    #expect(throws: StoreError.dimensionMismatch(expected: 16, got: 15, context: "image \(sha("image 8").prefix(12)) view 0, backbone m")) {
        try store.insertBatch(wrongDim, backbone: b)
    }
    var nan = sampleBatch(5..<10, d: 16)
    nan.features[4].vector[2] = .nan
    #expect(throws: StoreError.self) { try store.insertBatch(nan, backbone: b) }
    var badSHA = sampleBatch(5..<10, d: 16)
    badSHA.samples[1].sha256 = "not-a-hash"
    #expect(throws: StoreError.self) { try store.insertBatch(badSHA, backbone: b) }
    // Fails inside the transaction, after images and samples were written: a feature of an
    // image that is neither in the batch nor in the store. Everything rolls back.
    var late = sampleBatch(5..<10, d: 16)
    late.features.append(FeatureRecord(sha256: sha("image 999"), transform: "val", view: 0, vector: [Float](repeating: 1, count: 16)))
    #expect(throws: StoreError.self) { try store.insertBatch(late, backbone: b) }
    // A backbone that is not this store's.
    let foreign = StoredBackbone(id: 99, architecture: "m", weightsSHA256: sha("w"), dimension: 16)
    #expect(throws: StoreError.self) { try store.insertBatch(sampleBatch(5..<10, d: 16), backbone: foreign) }
    // A caller's transaction that throws after a batch rolls the batch back too.
    struct Stop: Error {}
    #expect(throws: Stop.self) {
        try store.transaction {
            try store.insertBatch(sampleBatch(5..<10, d: 16), backbone: b)
            throw Stop()
        }
    }
    #expect(try store.canonicalDigest() == before)
    #expect(try count(store, "images") == 5)
    // SQL outside the API cannot store a vector of the wrong length either (trigger).
    #expect(throws: StoreError.self) {
        try store.database.run("UPDATE features SET vector = x'00010203' WHERE rowid = 1")
    }
    #expect(try store.integrityProblems().isEmpty)
    // The store still works.
    try store.insertBatch(sampleBatch(5..<10, d: 16), backbone: b)
    #expect(try count(store, "features") == 10)
}

@Test func failuresAreRecordedAndCleared() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 2)
    var batch = sampleBatch(0..<2, d: 2)
    batch.failures = [FailureRecord(path: "train/ants/broken.jpg", sha256: sha("broken"), reason: "not a JPEG or PNG file")]
    try store.insertBatch(batch, backbone: b)
    #expect(try store.failures() == batch.failures)
    #expect(try store.info().failureCount == 1)
    // The file is fixed: its sample clears the failure.
    var fixed = sampleBatch(2..<3, d: 2)
    fixed.samples[0].path = "train/ants/broken.jpg"
    try store.insertBatch(fixed, backbone: b)
    #expect(try store.failures().isEmpty)
}

@Test func canonicalContentIgnoresOrderAndInterruptions() throws {
    let dir = try TempDir()
    let all = sampleBatch(0..<40, d: 8, views: 2)
    // An uninterrupted run: one batch per 8 images, in order.
    let a = try FeatureStore(path: dir.file("a.sqlite"))
    let ba = try a.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 8)
    func slice(_ r: Range<Int>) -> Batch {
        let shas = Set(r.map { sha("image \($0)") })
        return Batch(images: all.images.filter { shas.contains($0.sha256) }, samples: all.samples.filter { shas.contains($0.sha256) },
                     features: all.features.filter { shas.contains($0.key.sha256) })
    }
    for s in stride(from: 0, to: 40, by: 8) { try a.insertBatch(slice(s..<s + 8), backbone: ba) }
    // An "interrupted" run: a batch that failed mid-way (rolled back), a resume that redoes a
    // committed batch, and a different batching and order.
    let b = try FeatureStore(path: dir.file("b.sqlite"))
    let bb = try b.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 8)
    try b.insertBatch(slice(0..<5), backbone: bb)
    var broken = slice(5..<20)
    broken.features[7].vector.append(1)
    #expect(throws: StoreError.self) { try b.insertBatch(broken, backbone: bb) }
    try b.insertBatch(slice(30..<40), backbone: bb)
    try b.insertBatch(slice(0..<30), backbone: bb)
    #expect(try a.canonicalDigest() == b.canonicalDigest())
    var lines: [String] = []
    try a.canonicalDump { lines.append($0) }
    #expect(lines.count == 1 + 1 + 1 + 40 + 40 + 120)  // schema, meta, backbone, images, samples, features
    // Different content, different digest.
    try b.upsertSamples([SampleRecord(path: "val/ants/0.jpg", sha256: sha("image 0"), label: "bees", split: "val")])
    #expect(try a.canonicalDigest() != b.canonicalDigest())
}

@Test func headsPersistence() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "mobilenet_v2", weightsSHA256: sha("w"), dimension: 3)
    let head = HeadRecord(name: "ants-bees", backboneID: b.id, classes: ["ants", "bees"],
                          settingsJSON: #"{"solver":"sgd","lr":0.001}"#, metricsJSON: #"[{"epoch":1,"val_acc":0.9}]"#,
                          weights: [0.5, -1, 2, 3, 4, 5, 0.25, -0.125], created: "2026-11-29T00:00:00Z")
    try store.saveHead(head)
    #expect(try store.loadHead(name: "ants-bees") == head)
    #expect(try store.loadHead(name: "nope") == nil)
    #expect(throws: StoreError.self) { try store.saveHead(head, replace: false) }
    var other = head
    other.name = "second"; other.metricsJSON = "not json"
    #expect(throws: StoreError.self) { try store.saveHead(other) }
    other.metricsJSON = "[]"; other.backboneID = 42
    #expect(throws: StoreError.self) { try store.saveHead(other) }
    other.backboneID = b.id
    try store.saveHead(other)
    let list = try store.heads()
    #expect(list.map(\.name) == ["ants-bees", "second"])
    #expect(list[0].backbone == b && list[0].classes == ["ants", "bees"] && list[0].parameterCount == 8)
    #expect(try store.info().heads.count == 2)
    #expect(try store.deleteHead(name: "second"))
    #expect(try !store.deleteHead(name: "second"))
}

@Test func infoCounts() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "resnet18", weightsSHA256: sha("w"), dimension: 4)
    try store.insertBatch(sampleBatch(0..<12, d: 4, views: 2), backbone: b)
    let info = try store.info()
    #expect(info.schemaVersion == Schema.currentVersion && info.images == 12 && info.samples == 12)
    #expect(info.groups == [
        .init(split: "train", label: "ants", count: 3), .init(split: "train", label: "bees", count: 6),
        .init(split: "val", label: "ants", count: 3),
    ])
    #expect(info.backbones.count == 1 && info.backbones[0].rows == 36)
    #expect(info.backbones[0].views.map(\.view) == [0, 1, 2])
    #expect(info.sizeOnDisk > 0)
    let text = info.render()
    #expect(text.contains("schema version \(Schema.currentVersion)"))
    #expect(text.contains("rrc-flip views 1-2 (f32): 24 vectors"))
    #expect(text.contains("val view 0 (f32): 12 vectors"))
    let json = try JSONEncoder().encode(info)
    #expect(try JSONDecoder().decode(StoreInfo.self, from: json) == info)
}

@Test func labeledFeaturesForTraining() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("s.sqlite"))
    let b = try store.backbone(architecture: "m", weightsSHA256: sha("w"), dimension: 5)
    let batch = sampleBatch(0..<20, d: 5, views: 1)
    try store.insertBatch(batch, backbone: b)
    let train = try store.labeledFeatures(backbone: b, split: "train")
    #expect(train.count == 15 && train.vectors.count == 15 * 5)
    #expect(train.paths == train.paths.sorted())
    let first = try #require(batch.samples.firstIndex { $0.path == train.paths[0] })
    #expect(Array(train.vectors[0..<5]) == batch.features.first { $0.key.sha256 == batch.samples[first].sha256 && $0.key.view == 0 }!.vector)
    let aug = try store.labeledFeatures(backbone: b, split: "train", transform: "rrc-flip", view: 1)
    #expect(aug.paths == train.paths && aug.vectors != train.vectors)
    #expect(try store.views(backbone: b).map(\.view) == [0, 1])
}

@Test func aVersion1StoreOpensAndItsHeadsGainANullTemperature() throws {
    let dir = try TempDir()
    let path = dir.file("v1.sqlite")
    do {
        // A store as probe wrote it before version 2 (heads without a temperature column).
        let old = try FeatureStore(path: path, options: Database.Options(), migrations: [Schema.migrations[0]])
        #expect(try old.schemaVersion() == 1)
        let b = try old.backbone(architecture: "a", weightsSHA256: sha("w"), dimension: 2)
        _ = try old.database.run("""
            INSERT INTO heads(name, backbone_id, classes, settings, metrics, weights, created)
            VALUES ('h', ?1, '["x","y"]', '{}', '[]', zeroblob(24), '2026-01-01T00:00:00Z')
            """, [.integer(b.id)])
    }
    let store = try FeatureStore(path: path)
    #expect(try store.schemaVersion() == Schema.currentVersion)
    #expect(try store.database.scalarInt("SELECT count(*) FROM pragma_table_info('heads') WHERE name = 'temperature'") == 1)
    let h = try #require(try store.loadHead(name: "h"))
    #expect(h.temperature == nil)
    #expect(h.weights == [Float](repeating: 0, count: 6))
    // Uncalibrated heads dump as in version 1 (no temperature field): digests of old stores stay.
    var lines: [String] = []
    try store.canonicalDump { lines.append($0) }
    let headLine = try #require(lines.first { $0.hasPrefix("head h\t") })
    #expect(!headLine.contains("temperature"))
    let digestBefore = try store.canonicalDigest()
    #expect(try store.setHeadTemperature(name: "h", temperature: 1.75))
    #expect(try store.loadHead(name: "h")?.temperature == 1.75)
    #expect(try store.heads().first?.temperature == 1.75)
    #expect(try store.canonicalDigest() != digestBefore)
    #expect(throws: StoreError.self) { try store.setHeadTemperature(name: "h", temperature: -1) }
    #expect(try store.setHeadTemperature(name: "none", temperature: 2) == false)
}

/// Read-only commands (report, export, query) on a store an earlier probe wrote: a writable file is
/// migrated once and then read; a file that cannot be written is refused with what to do.
@Test func aVersion1StoreOpensReadOnlyAfterItsMigration() throws {
    let dir = try TempDir()
    let path = dir.file("v1.sqlite")
    do {
        let old = try FeatureStore(path: path, options: Database.Options(), migrations: [Schema.migrations[0]])
        _ = try old.backbone(architecture: "a", weightsSHA256: sha("w"), dimension: 2)
    }
    // Not writable (immutable): refused, and the file is still version 1.
    if chattrWorks {
        #expect(chattrImmutable(path, true))
        do {
            _ = try FeatureStore(path: path, readOnly: true)
            Issue.record("an unwritable version 1 store opened")
        } catch {
            #expect("\(error)".contains("schema version 1, older than this probe's \(Schema.currentVersion), and is not writable"))
        }
        #expect(chattrImmutable(path, false))
    }
    let store = try FeatureStore(path: path, readOnly: true)
    #expect(store.isReadOnly)
    #expect(try store.schemaVersion() == Schema.migrations.last!.version)
    #expect(try store.backbones().map(\.architecture) == ["a"])
    #expect(try store.database.scalarInt("SELECT count(*) FROM pragma_table_info('heads') WHERE name = 'temperature'") == 1)
}
