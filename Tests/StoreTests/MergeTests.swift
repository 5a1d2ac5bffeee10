import Foundation
import Testing
@testable import Store
import Digest
import TestSupport

/// Stores of disjoint parts of `sampleBatch(0..<n)`, shard k holding the images with i % parts == k
/// (written in an order that differs from a single writer's), and one store with everything.
private func makeParts(_ dir: TempDir, n: Int, parts: Int, d: Int = 32, dtype: VectorDType = .f32) throws -> (whole: String, shards: [String]) {
    let whole = try FeatureStore(path: dir.file("whole.sqlite"))
    let wb = try whole.backbone(architecture: "resnet18", weightsSHA256: sha("w"), dimension: d)
    try whole.insertBatch(sampleBatch(0..<n, d: d, views: 1), backbone: wb, dtype: dtype)
    try whole.recordFailures([FailureRecord(path: "train/ants/broken.jpg", sha256: sha("broken"), reason: "not a JPEG")])
    try whole.setMetaValue("weights-sha256:/w.pth", "1:2:" + sha("w"))
    var paths: [String] = []
    for k in 0..<parts {
        let path = dir.file("shard-\(k).sqlite")
        let s = try FeatureStore(path: path)
        let b = try s.backbone(architecture: "resnet18", weightsSHA256: sha("w"), dimension: d)
        let all = sampleBatch(0..<n, d: d, views: 1)
        var mine = Batch()
        // Reverse order: ids and rowids differ from the single writer's.
        for i in (0..<n).reversed() where i % parts == k {
            mine.images.append(all.images[i]); mine.samples.append(all.samples[i])
            mine.features += all.features.filter { $0.key.sha256 == all.images[i].sha256 }
        }
        try s.insertBatch(mine, backbone: b, dtype: dtype)
        if k == parts - 1 { try s.recordFailures([FailureRecord(path: "train/ants/broken.jpg", sha256: sha("broken"), reason: "not a JPEG")]) }
        try s.setMetaValue("weights-sha256:/w.pth", "1:2:" + sha("w"))
        try s.setMetaValue(FeatureStore.shardMetaKey, "\(k)/\(parts)")
        paths.append(path)
    }
    return (whole.path, paths)
}

private func digest(_ path: String) throws -> String { try FeatureStore(path: path, readOnly: true).canonicalDigest() }
private func fileDigest(_ path: String) throws -> String { SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: path))) }

@Suite(.serialized) struct MergeTests {
    /// Four parts merged equal the single writer's store: rows, vector bytes, canonical digest;
    /// a second merge of the same shards changes nothing; another order gives the same store.
    @Test func mergedPartsEqualOneStoreAndMergeIsIdempotent() throws {
        let dir = try TempDir()
        let (whole, shards) = try makeParts(dir, n: 40, parts: 4)
        let out = dir.file("merged.sqlite")
        let first = try FeatureStore.merge(into: out, shards: shards)
        #expect(first.created && first.images == 40 && first.samples == 40 && first.features == 80 && first.failures == 1)
        #expect(first.shards.map(\.features).reduce(0, +) == 80)
        #expect(first.warnings.isEmpty)
        let merged = try FeatureStore(path: out, readOnly: true)
        let reference = try FeatureStore(path: whole, readOnly: true)
        for table in ["images", "samples", "features", "failures", "backbones", "meta"] {
            #expect(try count(merged, table) == count(reference, table), "\(table)")
        }
        // Every vector's bytes, by content key.
        func blobs(_ s: FeatureStore) throws -> [String: [UInt8]] {
            Dictionary(uniqueKeysWithValues: try s.database.query(
                "SELECT i.sha256 || f.transform || f.view, f.vector FROM features f JOIN images i ON i.id = f.image_id") { ($0.string(0)!, $0.blob(1)) })
        }
        #expect(try blobs(merged) == blobs(reference))
        #expect(try merged.canonicalDigest() == reference.canonicalDigest())
        #expect(try merged.metaValue(FeatureStore.shardMetaKey) == nil)
        let comparison = try FeatureStore.compare(out, whole)
        #expect(comparison.equal && comparison.vectorsCompared == 80 && comparison.vectorBytesCompared == 80 * 32 * 4)
        let partial = try FeatureStore.compare(shards[0], whole)
        #expect(!partial.equal && partial.vectorsDiffering == 60 && partial.vectorsCompared == 20)

        // Idempotent: the same shards again add nothing.
        let before = try merged.canonicalDigest()
        let again = try FeatureStore.merge(into: out, shards: shards + [shards[1]])
        #expect(again.shards.allSatisfy { $0.images == 0 && $0.samples == 0 && $0.features == 0 && $0.failures == 0 })
        #expect(again.shards.map(\.featuresAlreadyPresent).reduce(0, +) == 80 + 20)
        #expect(try digest(out) == before)
        // Another order, into a new file: the same store.
        let reversed = dir.file("reversed.sqlite")
        _ = try FeatureStore.merge(into: reversed, shards: shards.reversed())
        #expect(try digest(reversed) == before)
        // Shards are only read.
        #expect(try shards.map { try FeatureStore(path: $0, readOnly: true).metaValue(FeatureStore.shardMetaKey) } == ["0/4", "1/4", "2/4", "3/4"])
    }

    /// A merge of some shards says which are missing; merging the rest later completes OUT.
    @Test func partialMergeWarnsAndCompletesLater() throws {
        let dir = try TempDir()
        let (whole, shards) = try makeParts(dir, n: 12, parts: 3)
        let out = dir.file("merged.sqlite")
        let partial = try FeatureStore.merge(into: out, shards: [shards[0], shards[2]])
        #expect(partial.warnings.count == 1 && partial.warnings[0].contains("1/3"))
        _ = try FeatureStore.merge(into: out, shards: [shards[1]])
        #expect(try digest(out) == digest(whole))
    }

    /// Refusals: other weights, other architecture, other precision, OUT of other content, OUT that is
    /// a shard, OUT that is not a probe store, a vector that differs from OUT's. Nothing is written.
    @Test func refusals() throws {
        let dir = try TempDir()
        let (_, shards) = try makeParts(dir, n: 8, parts: 2)
        func odd(_ name: String, architecture: String = "resnet18", weights: String = "w", dtype: VectorDType = .f32,
                 vectorSeed: UInt64 = 1) throws -> String {
            let s = try FeatureStore(path: dir.file(name))
            let b = try s.backbone(architecture: architecture, weightsSHA256: sha(weights), dimension: 32)
            try s.insertBatch(sampleBatch(0..<4, d: 32, views: 1, seed: vectorSeed), backbone: b, dtype: dtype)
            return s.path
        }
        let out = dir.file("out.sqlite")
        _ = try FeatureStore.merge(into: out, shards: shards)
        let before = try fileDigest(out)
        let otherWeights = try odd("weights.sqlite", weights: "finetuned")
        let otherArchitecture = try odd("arch.sqlite", architecture: "mobilenet_v2")
        let half = try odd("f16.sqlite", dtype: .f16)
        for (bad, expected) in [(otherWeights, "backbones"), (otherArchitecture, "backbones"), (half, "feature precisions")] {
            // Into the existing OUT, and among shards into a new OUT (which is then not even created).
            do {
                _ = try FeatureStore.merge(into: out, shards: [bad])
                Issue.record("merging \(bad) into OUT was not refused")
            } catch let e as MergeError {
                #expect(e.description.contains("refusing to mix \(expected)"), "\(e)")
                print("refused: \(e)")
            }
            let fresh = dir.file("fresh.sqlite")
            #expect(throws: MergeError.self) { try FeatureStore.merge(into: fresh, shards: [shards[0], bad]) }
            #expect(!FileManager.default.fileExists(atPath: fresh))
        }
        #expect(try fileDigest(out) == before)

        // A vector that differs from OUT's (same image, backbone, view): refused, the shard's transaction rolled back.
        let differing = try odd("differing.sqlite", vectorSeed: 99)
        do {
            _ = try FeatureStore.merge(into: out, shards: [differing])
            Issue.record("a differing vector was not refused")
        } catch let e as MergeError {
            guard case .differingVector = e else { Issue.record("\(e)"); return }
            print("refused: \(e)")
        }
        #expect(try FeatureStore(path: out, readOnly: true).integrityProblems().isEmpty)
        #expect(try count(FeatureStore(path: out, readOnly: true), "features") == 16)

        // A shard of an older schema version: refused untouched (opening it would migrate it).
        let old = dir.file("old.sqlite")
        do {
            let s = try FeatureStore(path: old, options: Database.Options(), migrations: Array(Schema.migrations.prefix(1)))
            let b = try s.backbone(architecture: "resnet18", weightsSHA256: sha("w"), dimension: 32)
            try s.insertBatch(sampleBatch(0..<4, d: 32, views: 1), backbone: b)
            try s.database.checkpoint()
        }
        let oldBytes = try fileDigest(old)
        #expect(throws: MergeError.shardNeedsMigration(shard: old, version: 1)) { try FeatureStore.merge(into: dir.file("new.sqlite"), shards: [old]) }
        #expect(try fileDigest(old) == oldBytes)

        // OUT is one of the shards (under another name: a hard link).
        let link = dir.file("link.sqlite")
        try FileManager.default.linkItem(atPath: shards[0], toPath: link)
        let shardBefore = try fileDigest(shards[0])
        #expect(throws: MergeError.outIsAShard(out: link, shard: shards[0])) { try FeatureStore.merge(into: link, shards: shards) }
        #expect(try fileDigest(shards[0]) == shardBefore)

        // OUT is someone else's file: a text file, an empty file, another SQLite database.
        let text = dir.file("notes.txt")
        try Data("my notes\n".utf8).write(to: URL(fileURLWithPath: text))
        let empty = dir.file("empty.sqlite")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let foreign = dir.file("foreign.sqlite")
        let db = try Database(path: foreign, options: { var o = Database.Options(); o.wal = false; return o }())
        try db.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        for path in [text, empty, foreign] {
            let bytes = try fileDigest(path)
            do {
                _ = try FeatureStore.merge(into: path, shards: shards)
                Issue.record("merging into \(path) was not refused")
            } catch let e as MergeError {
                guard case .outNotAStore = e else { Issue.record("\(e)"); continue }
            }
            #expect(try fileDigest(path) == bytes)
        }
    }
}
