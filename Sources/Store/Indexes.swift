/// Indexes that keep a large store fast (issue 15: `store info` of 1,000,000 images in well under a
/// second). They are not part of the format: a store without them is read the same way (only
/// slower), and an older probe works with a store that has them (SQLite maintains every index).
/// So they carry no schema version: probe creates the missing ones whenever it opens a store
/// read-write (a few seconds, once, for a million rows).
extension Schema {
    static let indexes: [(name: String, sql: String)] = [
        // store info's vectors per dtype, backbone, transform and view: a covering index (20-odd bytes
        // a row) instead of a scan of every vector. dtype leads so that SQLite's planner never takes it
        // for `backbone_id = ?` lookups: led by backbone_id, it made export and training scan it and
        // then sort every vector by path, and loading sort every vector by rowid.
        ("features_by_dtype_backbone_view",
         "CREATE INDEX IF NOT EXISTS features_by_dtype_backbone_view ON features(dtype, backbone_id, transform, view)"),
        // store info's samples per split and label.
        ("samples_by_split_label", "CREATE INDEX IF NOT EXISTS samples_by_split_label ON samples(split, label)"),
    ]

    /// Creates the indexes of `indexes` that the store lacks (nothing is written when it has them all).
    static func ensureIndexes(_ db: Database) throws {
        guard try db.userVersion() >= 1 else { return }
        let missing = try indexes.filter { try db.scalarInt("SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?", [.text($0.name)]) == nil }
        guard !missing.isEmpty else { return }
        try db.transaction {
            for index in missing { try db.execute(index.sql) }
        }
    }
}
