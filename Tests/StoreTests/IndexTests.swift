import Foundation
import Testing
@testable import Store
import TestSupport

/// The indexes outside the format (Schema.indexes): created on read-write opens only, and chosen
/// so that SQLite's planner keeps the plans of export, training and loading (no sort of vectors).
@Suite struct IndexTests {
    func plan(_ s: FeatureStore, _ sql: String) throws -> String {
        try s.database.query("EXPLAIN QUERY PLAN " + sql) { $0.string(3) ?? "" }.joined(separator: "; ")
    }

    @Test func createdOnReadWriteOpensOnly() throws {
        let dir = try TempDir()
        let path = dir.file("s.sqlite")
        do {
            let s = try FeatureStore(path: path)
            let b = try s.backbone(architecture: "resnet18", weightsSHA256: sha("w"), dimension: 4)
            try s.insertBatch(sampleBatch(0..<20, d: 4, views: 1), backbone: b)
            for index in Schema.indexes {
                #expect(try s.database.scalarInt("SELECT 1 FROM sqlite_schema WHERE name = ?", [.text(index.name)]) == 1)
                try s.database.execute("DROP INDEX \(index.name)")
            }
        }
        let reader = try FeatureStore(path: path, readOnly: true)
        #expect(try reader.database.scalarInt("SELECT count(*) FROM sqlite_schema WHERE name LIKE '%_by_%_%' AND name != 'samples_by_image'") == 0)
        let writer = try FeatureStore(path: path)
        #expect(try writer.database.scalarInt("SELECT count(*) FROM sqlite_schema WHERE name IN ('features_by_dtype_backbone_view', 'samples_by_split_label')") == 2)
        // The canonical content does not see them.
        let other = try FeatureStore(path: dir.file("t.sqlite"))
        let ob = try other.backbone(architecture: "resnet18", weightsSHA256: sha("w"), dimension: 4)
        try other.insertBatch(sampleBatch(0..<20, d: 4, views: 1), backbone: ob)
        try other.database.execute("DROP INDEX samples_by_split_label")
        #expect(try writer.canonicalDigest() == other.canonicalDigest())
    }

    @Test func queryPlansSortNoVectors() throws {
        let dir = try TempDir()
        let s = try FeatureStore(path: dir.file("s.sqlite"))
        let b = try s.backbone(architecture: "resnet18", weightsSHA256: sha("w"), dimension: 4)
        try s.insertBatch(sampleBatch(0..<50, d: 4, views: 1), backbone: b)
        // Export and training: samples in path order, each vector looked up by its key.
        let byPath = try plan(s, """
            SELECT s.path, f.vector FROM samples s JOIN images i ON i.id = s.image_id
            JOIN features f ON f.image_id = s.image_id AND f.backbone_id = 1 AND f.transform = 'val' AND f.view = 0
            WHERE (NULL IS NULL OR s.split = NULL) ORDER BY s.path
            """)
        #expect(!byPath.contains("TEMP B-TREE") && !byPath.contains("features_by_dtype_backbone_view"), "\(byPath)")
        // Loading: a rowid range.
        let load = try plan(s, "SELECT image_id, dtype, vector FROM features NOT INDEXED WHERE backbone_id = 1 AND transform = 'val' AND view = 0 AND rowid BETWEEN 1 AND 9 ORDER BY rowid")
        #expect(load.contains("INTEGER PRIMARY KEY") && !load.contains("TEMP B-TREE"), "\(load)")
        // store info: counts from the covering index, no scan of the vectors.
        let info = try plan(s, "SELECT backbone_id, transform, view, dtype, count(*) FROM features GROUP BY backbone_id, transform, view, dtype ORDER BY backbone_id, view, transform, dtype")
        #expect(info.contains("COVERING INDEX features_by_dtype_backbone_view"), "\(info)")
        let groups = try plan(s, "SELECT split, label, count(*) FROM samples GROUP BY split, label ORDER BY split, label")
        #expect(groups.contains("COVERING INDEX samples_by_split_label") && !groups.contains("TEMP B-TREE"), "\(groups)")
    }
}
