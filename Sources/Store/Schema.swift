/// The feature store's schema, version 3 (`PRAGMA user_version = 3`, `PRAGMA application_id =
/// 0x50524F42` "PROB"). Sources/Store/SCHEMA.md documents it for people with the `sqlite3` shell.
///
/// ```
/// meta(key TEXT PRIMARY KEY, value TEXT)                  -- free-form facts ('schema' = 'probe feature store')
/// images(id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE,      -- one row per distinct file content
///        width, height, byte_size)
/// samples(path TEXT PRIMARY KEY, image_id -> images,      -- one row per file path: its class folder
///         label, split NULL|'train'|'val'|..., mtime_ns)  --   (label) and train/val folder (split)
/// backbones(id INTEGER PRIMARY KEY, architecture,          -- a network *and* its weights
///           weights_sha256, dimension, UNIQUE(architecture, weights_sha256))
/// features(image_id -> images, backbone_id -> backbones,  -- one vector per image, backbone, view
///          transform TEXT, view INTEGER, dtype 'f32'|'f16', vector BLOB little-endian,
///          PRIMARY KEY(image_id, backbone_id, transform, view))
/// failures(path TEXT PRIMARY KEY, sha256, reason)          -- files that could not be decoded
/// heads(name TEXT PRIMARY KEY, backbone_id -> backbones,  -- trained classifiers
///       classes JSON, settings JSON, metrics JSON, weights BLOB f32 LE, created TEXT,
///       temperature REAL NULL)                            --   (version 2: temperature scaling)
/// quantizations(backbone_id -> backbones PRIMARY KEY,      -- version 3: an int8 backbone's float
///       precision 'int8', weights_sha256, calibration JSON) --   weights and activation ranges
/// ```
///
/// Determinism: the store holds no timestamps except `heads.created`, and integer ids follow the
/// order of insertion, which the extractor makes deterministic. `FeatureStore.canonicalDigest()`
/// hashes every table with ids replaced by content keys (sha256, architecture + weights hash) and
/// rows sorted by those keys, so it compares stores independently of ids, rowids, page layout and
/// of where a run was interrupted; `heads.created` is left out of it.
enum Schema {
    /// The newest schema version this code writes and understands.
    static let currentVersion = 3
    /// "PROB": marks an SQLite file as a probe store.
    static let applicationID: Int32 = 0x5052_4F42

    /// One migration step: brings a store from `version - 1` to `version`.
    struct Migration: Sendable {
        let version: Int
        let sql: String
    }

    /// The ordered list of migrations. Step k takes a store from version k-1 to k; every step runs
    /// in its own transaction together with the `user_version` bump.
    static let migrations: [Migration] = [
        Migration(version: 1, sql: v1),
        Migration(version: 2, sql: v2),
        Migration(version: 3, sql: v3),
    ]

    static let v1 = """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE images (
        id        INTEGER PRIMARY KEY,
        sha256    TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
        width     INTEGER,
        height    INTEGER,
        byte_size INTEGER NOT NULL CHECK (byte_size >= 0)
    );
    CREATE TABLE samples (
        path     TEXT PRIMARY KEY,
        image_id INTEGER NOT NULL REFERENCES images(id),
        label    TEXT NOT NULL,
        split    TEXT,
        mtime_ns INTEGER
    );
    CREATE INDEX samples_by_image ON samples(image_id);
    CREATE TABLE backbones (
        id             INTEGER PRIMARY KEY,
        architecture   TEXT NOT NULL,
        weights_sha256 TEXT NOT NULL,
        dimension      INTEGER NOT NULL CHECK (dimension > 0),
        UNIQUE (architecture, weights_sha256)
    );
    CREATE TABLE features (
        image_id    INTEGER NOT NULL REFERENCES images(id),
        backbone_id INTEGER NOT NULL REFERENCES backbones(id),
        transform   TEXT NOT NULL,
        view        INTEGER NOT NULL CHECK (view >= 0),
        dtype       TEXT NOT NULL CHECK (dtype IN ('f32', 'f16')),
        vector      BLOB NOT NULL,
        PRIMARY KEY (image_id, backbone_id, transform, view)
    );
    CREATE TRIGGER features_length_insert BEFORE INSERT ON features
    WHEN length(NEW.vector) IS NOT (SELECT dimension FROM backbones WHERE id = NEW.backbone_id)
                                   * (CASE NEW.dtype WHEN 'f16' THEN 2 ELSE 4 END)
    BEGIN SELECT RAISE(ABORT, 'vector length does not match the backbone dimension and dtype'); END;
    CREATE TRIGGER features_length_update BEFORE UPDATE ON features
    WHEN length(NEW.vector) IS NOT (SELECT dimension FROM backbones WHERE id = NEW.backbone_id)
                                   * (CASE NEW.dtype WHEN 'f16' THEN 2 ELSE 4 END)
    BEGIN SELECT RAISE(ABORT, 'vector length does not match the backbone dimension and dtype'); END;
    CREATE TABLE failures (
        path   TEXT PRIMARY KEY,
        sha256 TEXT,
        reason TEXT NOT NULL
    );
    CREATE TABLE heads (
        name        TEXT PRIMARY KEY,
        backbone_id INTEGER NOT NULL REFERENCES backbones(id),
        classes     TEXT NOT NULL,
        settings    TEXT NOT NULL,
        metrics     TEXT NOT NULL,
        weights     BLOB NOT NULL,
        created     TEXT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES ('schema', 'probe feature store; see Sources/Store/SCHEMA.md');
    """

    /// Version 2: a head's softmax temperature (temperature scaling, fitted on a validation split);
    /// NULL = not calibrated (probabilities use T = 1).
    static let v2 = """
    ALTER TABLE heads ADD COLUMN temperature REAL CHECK (temperature IS NULL OR temperature > 0);
    """

    /// Version 3: int8 backbones. A quantized network is a backbone of its own (features never mix
    /// with the float32 ones of the same weights): its `backbones.weights_sha256` is the identity of
    /// the quantized model (see `FeatureStore.int8Identity`), and this table says what it quantizes
    /// and how (the calibrated activation ranges, JSON).
    static let v3 = """
    CREATE TABLE quantizations (
        backbone_id    INTEGER PRIMARY KEY REFERENCES backbones(id),
        precision      TEXT NOT NULL CHECK (precision IN ('int8')),
        weights_sha256 TEXT NOT NULL CHECK (length(weights_sha256) = 64),
        calibration    TEXT NOT NULL
    );
    """

    /// Refuses what is not a probe store (another application id, tables without a probe version)
    /// and a store of a newer version; returns the store's version. Only reads: run it on a
    /// read-only connection before anything may change the file.
    @discardableResult
    static func check(_ db: Database, migrations: [Migration] = Schema.migrations) throws -> Int {
        let supported = migrations.last?.version ?? 0
        // One read transaction, so the three reads see one snapshot: another process may commit the
        // first migration in between (a version read as 0, then its tables counted, looked foreign).
        try db.execute("BEGIN DEFERRED")
        defer { try? db.execute("COMMIT") }
        let version = try db.userVersion()
        let appID = Int32(truncatingIfNeeded: try db.scalarInt("PRAGMA application_id") ?? 0)
        if version > supported {
            throw StoreError.newerSchema(path: db.path, found: version, supported: supported)
        }
        if appID != 0 && appID != applicationID {
            throw StoreError.notAProbeStore(path: db.path, reason: "application_id is \(appID)")
        }
        if version == 0 {
            // A version-0 file must be empty: anything else is someone else's database.
            let tables = try db.scalarInt("SELECT count(*) FROM sqlite_schema") ?? 0
            if tables > 0 && appID != applicationID {
                throw StoreError.notAProbeStore(path: db.path, reason: "it has \(tables) schema objects and no probe schema version")
            }
        }
        return version
    }

    /// Brings the store to the newest version of `migrations`, or refuses it.
    static func migrate(_ db: Database, migrations: [Migration] = Schema.migrations) throws {
        let supported = migrations.last?.version ?? 0
        let version = try check(db, migrations: migrations)
        if version == supported { return }
        for step in migrations where step.version > version {
            do {
                try db.transaction {
                    // Re-read inside the write lock: another connection may have migrated meanwhile.
                    let now = try db.userVersion()
                    guard now == step.version - 1 else { return }
                    try db.execute(step.sql)
                    try db.execute("PRAGMA application_id = \(applicationID)")
                    try db.setUserVersion(step.version)
                }
            } catch {
                throw StoreError.migrationFailed(path: db.path, version: (try? db.userVersion()) ?? step.version - 1,
                                                 message: "\(error)")
            }
        }
    }
}
