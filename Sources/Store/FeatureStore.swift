import CSQLite
import Foundation

/// A backbone as the store records it (the `backbones` table): an architecture with one set of
/// weights. Features of different weights never mix. (The network itself is Backbones' `Backbone`.)
public struct StoredBackbone: Sendable, Codable, Equatable, Hashable {
    public let id: Int64
    public let architecture: String
    public let weightsSHA256: String
    public let dimension: Int
}

/// An image, identified by the SHA-256 of its file's bytes.
public struct ImageRecord: Sendable, Codable, Equatable {
    public var sha256: String
    public var width: Int?
    public var height: Int?
    public var byteSize: Int
    public init(sha256: String, width: Int? = nil, height: Int? = nil, byteSize: Int) {
        self.sha256 = sha256; self.width = width; self.height = height; self.byteSize = byteSize
    }
}

/// A file path of the data set: its content, class folder (label) and train/val folder (split).
public struct SampleRecord: Sendable, Codable, Equatable {
    public var path: String
    public var sha256: String
    public var label: String
    /// "train", "val", ... or nil when the tree has no split folders.
    public var split: String?
    /// The file's modification time (ns since 1970), to skip re-hashing unchanged files.
    public var mtimeNS: Int64?
    public init(path: String, sha256: String, label: String, split: String?, mtimeNS: Int64? = nil) {
        self.path = path; self.sha256 = sha256; self.label = label; self.split = split; self.mtimeNS = mtimeNS
    }
}

/// A sample as stored, with its image's facts.
public struct SampleInfo: Sendable, Codable, Equatable {
    public var path: String
    public var imageID: Int64
    public var sha256: String
    public var label: String
    public var split: String?
    public var mtimeNS: Int64?
    public var byteSize: Int
    public var width: Int?
    public var height: Int?
}

/// Which feature: image content, transform name ("val", "rrc-flip", ...) and view
/// (0 = the validation transform, 1...N = augmented views).
public struct FeatureKey: Sendable, Hashable, Codable {
    public var sha256: String
    public var transform: String
    public var view: Int
    public init(sha256: String, transform: String, view: Int) {
        self.sha256 = sha256; self.transform = transform; self.view = view
    }
}

public struct FeatureRecord: Sendable {
    public var key: FeatureKey
    public var vector: [Float]
    public init(key: FeatureKey, vector: [Float]) { self.key = key; self.vector = vector }
    public init(sha256: String, transform: String, view: Int, vector: [Float]) {
        self.init(key: FeatureKey(sha256: sha256, transform: transform, view: view), vector: vector)
    }
}

/// A file that could not be used (decoding failed, unreadable, ...).
public struct FailureRecord: Sendable, Codable, Equatable {
    public var path: String
    public var sha256: String?
    public var reason: String
    public init(path: String, sha256: String? = nil, reason: String) {
        self.path = path; self.sha256 = sha256; self.reason = reason
    }
}

/// Everything one extraction batch writes, committed in one transaction.
public struct Batch: Sendable {
    public var images: [ImageRecord]
    public var samples: [SampleRecord]
    public var features: [FeatureRecord]
    public var failures: [FailureRecord]
    public init(images: [ImageRecord] = [], samples: [SampleRecord] = [], features: [FeatureRecord] = [],
                failures: [FailureRecord] = []) {
        self.images = images; self.samples = samples; self.features = features; self.failures = failures
    }
}

public struct BatchResult: Sendable, Codable, Equatable {
    /// Rows written (inserted or updated).
    public var images = 0, samples = 0, features = 0, failures = 0
    /// Bytes of vector data written.
    public var vectorBytes = 0
    /// Bytes saved by half precision compared with float32.
    public var bytesSavedByF16 = 0
}

/// The SQLite feature store: content-addressed images, samples, backbones, feature vectors,
/// failures and heads. One instance is one connection: use one per thread.
public final class FeatureStore {
    public static let defaultPath = "cache/features.sqlite"
    public let database: Database
    public var path: String { database.path }

    /// Opens (creating when absent, unless `readOnly`) and migrates the store at `path`.
    /// Refuses a store of a newer schema version and SQLite files that are not probe stores.
    public convenience init(path: String, readOnly: Bool = false) throws {
        var options = Database.Options()
        options.readOnly = readOnly
        try self.init(path: path, options: options, migrations: Schema.migrations)
    }

    /// Opens the store at `path` with connection options of your own (e.g. no WAL for a fixture
    /// that need not survive a crash).
    public convenience init(path: String, options: Database.Options) throws {
        try self.init(path: path, options: options, migrations: Schema.migrations)
    }

    init(path: String, options: Database.Options, migrations: [Schema.Migration]) throws {
        if !options.readOnly && options.create {
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
            if !FileManager.default.fileExists(atPath: dir.path) {
                do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
                    throw StoreError.cannotOpen(path: path, message: "cannot create directory \(dir.path): \(error.localizedDescription)")
                }
            }
        } else if !FileManager.default.fileExists(atPath: path) {
            throw StoreError.cannotOpen(path: path, message: "no such file (run `probe extract` first)")
        }
        // An existing file is checked on a read-only connection first: someone else's database is
        // refused before anything (page size, journal mode, migrations) could change it.
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
        if size > 0 {
            var reader = try Self.openReading(path: path, options: options)
            let version = try Schema.check(reader, migrations: migrations)
            let supported = migrations.last?.version ?? 0
            if options.readOnly || !Self.isWritable(path) {
                if version < supported {
                    // An older store is brought up to date once (its migrations only add), when the
                    // file can be written, and then read as asked.
                    guard Self.isWritable(path) else {
                        throw StoreError.notAProbeStore(path: path, reason: "it has schema version \(version), older than this probe's \(supported), "
                                                        + "and is not writable; make it writable once so that probe can migrate it")
                    }
                    var o = options
                    o.readOnly = false
                    o.create = false
                    try Schema.migrate(try Database(path: path, options: o), migrations: migrations)
                    reader = try Self.openReading(path: path, options: options)
                }
                database = reader
                return
            }
        }
        database = try Database(path: path, options: options)
        try Schema.migrate(database, migrations: migrations)
        try Schema.ensureIndexes(database)
    }

    /// Whether probe may write the store: the file and its directory (for the -wal, -shm and journal files).
    static func isWritable(_ path: String) -> Bool {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return access(path, W_OK) == 0 && access(dir, W_OK) == 0
    }

    /// A read-only connection. A WAL store in a directory that is not writable cannot be opened
    /// `mode=ro` when its -shm file is absent (SQLite needs to create it: https://www.sqlite.org/wal.html#readonly).
    /// Then, and only when the -wal file is absent or empty, it is opened `immutable=1`: every
    /// committed transaction is in the main file, and no writer can exist, since a writer would
    /// have to create a -wal or journal file in that directory. A non-empty -wal file is refused
    /// (`unreadableWAL`) rather than read past.
    static func openReading(path: String, options: Database.Options) throws -> Database {
        var o = options
        o.readOnly = true
        o.immutable = false
        do {
            return try Database(path: path, options: o)
        } catch let StoreError.sqlite(code, message, sql) where code & 0xFF == SQLITE_READONLY || code & 0xFF == SQLITE_CANTOPEN {
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            let walSize = ((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? NSNumber)?.intValue ?? 0
            guard access(dir, W_OK) != 0 else { throw StoreError.sqlite(code: code, message: message, sql: sql) }
            guard walSize == 0 else { throw StoreError.unreadableWAL(path: path) }
            o.immutable = true
            return try Database(path: path, options: o)
        }
    }

    /// True when this connection cannot write (the store was opened read-only, or is not writable).
    public var isReadOnly: Bool { database.isReadOnly }

    /// Throws `readOnlyStore` when this connection cannot write; call it before work whose result must be saved.
    public func requireWritable(_ action: String) throws {
        if isReadOnly { throw StoreError.readOnlyStore(path: path, action: action) }
    }

    /// The schema version of this store (`PRAGMA user_version`).
    public func schemaVersion() throws -> Int { try database.userVersion() }
    public static var supportedSchemaVersion: Int { Schema.currentVersion }

    /// Runs `body` in one transaction (rolled back when it throws).
    public func transaction<T>(_ body: () throws -> T) throws -> T { try database.transaction(body) }

    /// `PRAGMA integrity_check` plus `PRAGMA foreign_key_check`: empty when the store is sound.
    public func integrityProblems() throws -> [String] {
        var problems = try database.integrityCheck().filter { $0 != "ok" }
        problems += try database.query("PRAGMA foreign_key_check") { s in
            "foreign key violation in \(s.string(0) ?? "?") rowid \(s.int64(1)) -> \(s.string(2) ?? "?")"
        }
        return problems
    }

    // MARK: Validation

    static func checkSHA256(_ s: String, _ what: String) throws {
        let u = s.utf8
        guard u.count == 64, u.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw StoreError.invalidArgument("\(what): '\(s.prefix(80))' is not a SHA-256 (64 lowercase hex digits)")
        }
    }

    // MARK: Backbones

    /// The backbone with this architecture and weights, registered when new.
    public func backbone(architecture: String, weightsSHA256: String, dimension: Int) throws -> StoredBackbone {
        guard !architecture.isEmpty else { throw StoreError.invalidArgument("empty backbone architecture name") }
        try Self.checkSHA256(weightsSHA256, "weights sha256")
        guard dimension > 0 else { throw StoreError.invalidArgument("backbone dimension \(dimension) must be positive") }
        if let b = try findBackbone(architecture: architecture, weightsSHA256: weightsSHA256) {
            guard b.dimension == dimension else {
                throw StoreError.dimensionMismatch(expected: b.dimension, got: dimension,
                                                   context: "backbone \(architecture) is registered with dimension \(b.dimension)")
            }
            return b
        }
        return try database.transaction {
            try database.run("INSERT INTO backbones(architecture, weights_sha256, dimension) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                             [.text(architecture), .text(weightsSHA256), .int(dimension)])
            guard let b = try findBackbone(architecture: architecture, weightsSHA256: weightsSHA256) else {
                throw StoreError.notFound("backbone \(architecture) after registering it")
            }
            return b
        }
    }

    public func findBackbone(architecture: String, weightsSHA256: String) throws -> StoredBackbone? {
        try database.queryFirst("SELECT id, architecture, weights_sha256, dimension FROM backbones WHERE architecture = ? AND weights_sha256 = ?",
                                [.text(architecture), .text(weightsSHA256)], row: Self.backboneRow)
    }

    public func backbone(id: Int64) throws -> StoredBackbone? {
        try database.queryFirst("SELECT id, architecture, weights_sha256, dimension FROM backbones WHERE id = ?",
                                [.integer(id)], row: Self.backboneRow)
    }

    public func backbones() throws -> [StoredBackbone] {
        try database.query("SELECT id, architecture, weights_sha256, dimension FROM backbones ORDER BY id", row: Self.backboneRow)
    }

    static func backboneRow(_ s: Statement) -> StoredBackbone {
        StoredBackbone(id: s.int64(0), architecture: s.string(1) ?? "", weightsSHA256: s.string(2) ?? "", dimension: s.int(3))
    }

    // MARK: Writing

    /// Writes one batch in one transaction: images (upserted by sha256), samples (upserted by
    /// path; a path that succeeds clears its failure), features of `backbone` (upserted by key)
    /// and failures (a failing path loses its sample row). Everything is validated first; on any
    /// error nothing of the batch is stored.
    @discardableResult
    public func insertBatch(_ batch: Batch, backbone: StoredBackbone, dtype: VectorDType = .f32) throws -> BatchResult {
        try requireWritable("store features")
        // Validate everything before touching the store.
        for im in batch.images {
            try Self.checkSHA256(im.sha256, "image")
            guard im.byteSize >= 0, (im.width ?? 0) >= 0, (im.height ?? 0) >= 0 else {
                throw StoreError.invalidArgument("image \(im.sha256): negative size")
            }
        }
        for s in batch.samples {
            try Self.checkSHA256(s.sha256, "sample \(s.path)")
            guard !s.path.isEmpty else { throw StoreError.invalidArgument("sample with an empty path") }
        }
        for f in batch.failures where f.path.isEmpty { throw StoreError.invalidArgument("failure with an empty path") }
        for f in batch.failures { if let h = f.sha256 { try Self.checkSHA256(h, "failure \(f.path)") } }
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(batch.features.count)
        var result = BatchResult()
        var scratch: [UInt8] = []
        for f in batch.features {
            try Self.checkSHA256(f.key.sha256, "feature")
            guard f.key.view >= 0 else { throw StoreError.invalidArgument("feature view \(f.key.view) is negative") }
            guard !f.key.transform.isEmpty else { throw StoreError.invalidArgument("feature with an empty transform name") }
            guard f.vector.count == backbone.dimension else {
                throw StoreError.dimensionMismatch(expected: backbone.dimension, got: f.vector.count,
                                                   context: "image \(f.key.sha256.prefix(12)) view \(f.key.view), backbone \(backbone.architecture)")
            }
            try f.vector.withUnsafeBufferPointer {
                try VectorCodec.encode($0, dtype: dtype, into: &scratch,
                                       context: "image \(f.key.sha256.prefix(12)) view \(f.key.view)")
            }
            encoded.append(scratch)
            result.vectorBytes += scratch.count
            if dtype == .f16 { result.bytesSavedByF16 += f.vector.count * 2 }
        }
        let db = database
        return try db.transaction {
            guard try self.backbone(id: backbone.id) == backbone else {
                throw StoreError.notFound("backbone \(backbone.architecture) id \(backbone.id) in \(path)")
            }
            var ids: [String: Int64] = [:]
            let upsertImage = try db.cachedStatement("""
                INSERT INTO images(sha256, width, height, byte_size) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT(sha256) DO UPDATE SET width = coalesce(excluded.width, width),
                    height = coalesce(excluded.height, height), byte_size = excluded.byte_size
                RETURNING id
                """)
            for im in batch.images {
                upsertImage.reset()
                try upsertImage.bind(im.sha256, at: 1)
                if let w = im.width { try upsertImage.bind(w, at: 2) }
                if let h = im.height { try upsertImage.bind(h, at: 3) }
                try upsertImage.bind(im.byteSize, at: 4)
                guard try upsertImage.step() else { throw StoreError.notFound("image id after upsert") }
                ids[im.sha256] = upsertImage.int64(0)
                while try upsertImage.step() {}
                result.images += 1
            }
            upsertImage.reset()
            func imageID(_ sha: String) throws -> Int64 {
                if let id = ids[sha] { return id }
                guard let id = try db.scalarInt("SELECT id FROM images WHERE sha256 = ?", [.text(sha)]) else {
                    throw StoreError.notFound("image \(sha) is not in the store: add its ImageRecord to the batch")
                }
                ids[sha] = id
                return id
            }
            let upsertSample = try db.cachedStatement("""
                INSERT INTO samples(path, image_id, label, split, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)
                ON CONFLICT(path) DO UPDATE SET image_id = excluded.image_id, label = excluded.label,
                    split = excluded.split, mtime_ns = excluded.mtime_ns
                """)
            defer { upsertSample.reset() }
            let hasFailures = try db.scalarInt("SELECT EXISTS (SELECT 1 FROM failures)") == 1
            for s in batch.samples {
                let id = try imageID(s.sha256)
                upsertSample.reset()
                try upsertSample.bind([.text(s.path), .integer(id), .text(s.label), .optionalText(s.split), .optionalInt(s.mtimeNS)])
                try upsertSample.step()
                if hasFailures { try db.run("DELETE FROM failures WHERE path = ?", [.text(s.path)]) }
                result.samples += 1
            }
            let upsertFeature = try db.cachedStatement("""
                INSERT INTO features(image_id, backbone_id, transform, view, dtype, vector) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                ON CONFLICT(image_id, backbone_id, transform, view) DO UPDATE SET dtype = excluded.dtype, vector = excluded.vector
                """)
            defer { upsertFeature.reset() }
            for (f, bytes) in zip(batch.features, encoded) {
                let id = try imageID(f.key.sha256)
                upsertFeature.reset()
                try upsertFeature.bind(id, at: 1)
                try upsertFeature.bind(backbone.id, at: 2)
                try upsertFeature.bind(f.key.transform, at: 3)
                try upsertFeature.bind(f.key.view, at: 4)
                try upsertFeature.bind(dtype.rawValue, at: 5)
                try bytes.withUnsafeBytes { try upsertFeature.bind(blob: $0, at: 6) }
                try upsertFeature.step()
                result.features += 1
            }
            for f in batch.failures {
                try db.run("""
                    INSERT INTO failures(path, sha256, reason) VALUES (?1, ?2, ?3)
                    ON CONFLICT(path) DO UPDATE SET sha256 = excluded.sha256, reason = excluded.reason
                    """, [.text(f.path), .optionalText(f.sha256), .text(f.reason)])
                try db.run("DELETE FROM samples WHERE path = ?", [.text(f.path)])
                result.failures += 1
            }
            return result
        }
    }

    /// Records samples of images already in the store (e.g. a renamed or copied file): nothing
    /// is recomputed. Throws `notFound` for a sha256 that has no image row.
    @discardableResult
    public func upsertSamples(_ samples: [SampleRecord]) throws -> Int {
        for s in samples {
            try Self.checkSHA256(s.sha256, "sample \(s.path)")
            guard !s.path.isEmpty else { throw StoreError.invalidArgument("sample with an empty path") }
        }
        return try database.transaction {
            for s in samples {
                guard let id = try database.scalarInt("SELECT id FROM images WHERE sha256 = ?", [.text(s.sha256)]) else {
                    throw StoreError.notFound("image \(s.sha256) of \(s.path) is not in the store")
                }
                try database.run("""
                    INSERT INTO samples(path, image_id, label, split, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)
                    ON CONFLICT(path) DO UPDATE SET image_id = excluded.image_id, label = excluded.label,
                        split = excluded.split, mtime_ns = excluded.mtime_ns
                    """, [.text(s.path), .integer(id), .text(s.label), .optionalText(s.split), .optionalInt(s.mtimeNS)])
                try database.run("DELETE FROM failures WHERE path = ?", [.text(s.path)])
            }
            return samples.count
        }
    }

    /// Deletes the sample rows of these paths (files that disappeared). Images and features stay:
    /// the same content found under another name is not recomputed.
    @discardableResult
    public func removeSamples(paths: [String]) throws -> Int {
        try database.transaction {
            var n = 0
            for p in paths { n += try database.run("DELETE FROM samples WHERE path = ?", [.text(p)]) }
            return n
        }
    }

    /// Moves a sample to a new path (a rename): its image and features are untouched.
    public func renameSample(from old: String, to new: String) throws {
        guard !new.isEmpty else { throw StoreError.invalidArgument("empty new path") }
        try database.transaction {
            try database.run("DELETE FROM samples WHERE path = ?", [.text(new)])
            let n = try database.run("UPDATE samples SET path = ? WHERE path = ?", [.text(new), .text(old)])
            if n == 0 { throw StoreError.notFound("sample \(old)") }
        }
    }

    /// Records failures outside a batch.
    public func recordFailures(_ failures: [FailureRecord]) throws {
        for f in failures { if let h = f.sha256 { try Self.checkSHA256(h, "failure \(f.path)") } }
        try database.transaction {
            for f in failures {
                try database.run("""
                    INSERT INTO failures(path, sha256, reason) VALUES (?1, ?2, ?3)
                    ON CONFLICT(path) DO UPDATE SET sha256 = excluded.sha256, reason = excluded.reason
                    """, [.text(f.path), .optionalText(f.sha256), .text(f.reason)])
                try database.run("DELETE FROM samples WHERE path = ?", [.text(f.path)])
            }
        }
    }

    public func clearFailure(path: String) throws {
        try database.run("DELETE FROM failures WHERE path = ?", [.text(path)])
    }

    // MARK: Reading

    /// Of `keys`, those that have no feature row for `backbone`, in the order given. Answers
    /// in one read transaction with one prepared lookup per key (about a microsecond each).
    public func missingFeatures(backbone: StoredBackbone, keys: [FeatureKey]) throws -> [FeatureKey] {
        let db = database
        return try db.read {
        let s = try db.cachedStatement("""
            SELECT 1 FROM images i JOIN features f ON f.image_id = i.id
            WHERE i.sha256 = ?1 AND f.backbone_id = ?2 AND f.transform = ?3 AND f.view = ?4
            """)
        defer { s.reset() }
        var missing: [FeatureKey] = []
        for k in keys {
            s.reset()
            try s.bind(k.sha256, at: 1)
            try s.bind(backbone.id, at: 2)
            try s.bind(k.transform, at: 3)
            try s.bind(k.view, at: 4)
            if !(try s.step()) { missing.append(k) }
        }
        return missing
        }
    }

    /// Of these sha256s, those with an image row.
    public func knownImages(_ sha256s: [String]) throws -> Set<String> {
        var known = Set<String>()
        try database.read {
            for h in sha256s where try database.scalarInt("SELECT 1 FROM images WHERE sha256 = ?", [.text(h)]) != nil {
                known.insert(h)
            }
        }
        return known
    }

    static let sampleColumns = """
        SELECT s.path, s.image_id, i.sha256, s.label, s.split, s.mtime_ns, i.byte_size, i.width, i.height
        FROM samples s JOIN images i ON i.id = s.image_id
        """

    static func sampleRow(_ s: Statement) -> SampleInfo {
        SampleInfo(path: s.string(0) ?? "", imageID: s.int64(1), sha256: s.string(2) ?? "", label: s.string(3) ?? "",
                   split: s.string(4), mtimeNS: s.isNull(5) ? nil : s.int64(5), byteSize: s.int(6),
                   width: s.isNull(7) ? nil : s.int(7), height: s.isNull(8) ? nil : s.int(8))
    }

    public func sample(path: String) throws -> SampleInfo? {
        try database.queryFirst(Self.sampleColumns + " WHERE s.path = ?", [.text(path)], row: Self.sampleRow)
    }

    /// Samples, optionally of one split and/or label, sorted by path.
    public func samples(split: String? = nil, label: String? = nil) throws -> [SampleInfo] {
        try database.query(Self.sampleColumns + " WHERE (?1 IS NULL OR s.split = ?1) AND (?2 IS NULL OR s.label = ?2) ORDER BY s.path",
                           [.optionalText(split), .optionalText(label)], row: Self.sampleRow)
    }

    /// Samples of one image.
    public func samples(imageID: Int64) throws -> [SampleInfo] {
        try database.query(Self.sampleColumns + " WHERE s.image_id = ? ORDER BY s.path", [.integer(imageID)], row: Self.sampleRow)
    }

    /// Samples of several images (e.g. the neighbours of a query), keyed by image id.
    public func samples(imageIDs: [Int64]) throws -> [Int64: [SampleInfo]] {
        try database.read {
            var out: [Int64: [SampleInfo]] = [:]
            for id in imageIDs where out[id] == nil { out[id] = try samples(imageID: id) }
            return out
        }
    }

    /// The image id of a sha256 or of a unique sha256 prefix (at least 4 hex digits).
    public func imageID(sha256OrPrefix p: String) throws -> Int64? {
        let lower = p.lowercased()
        guard lower.count >= 4, lower.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw StoreError.invalidArgument("'\(p)' is not a sha256 prefix (at least 4 hex digits)")
        }
        let ids = try database.query("SELECT id FROM images WHERE sha256 >= ?1 AND sha256 < ?1 || 'g' LIMIT 2",
                                     [.text(lower)]) { $0.int64(0) }
        if ids.count > 1 { throw StoreError.invalidArgument("sha256 prefix '\(p)' is ambiguous; give more digits") }
        return ids.first
    }

    public func image(id: Int64) throws -> ImageRecord? {
        try database.queryFirst("SELECT sha256, width, height, byte_size FROM images WHERE id = ?", [.integer(id)]) { s in
            ImageRecord(sha256: s.string(0) ?? "", width: s.isNull(1) ? nil : s.int(1),
                        height: s.isNull(2) ? nil : s.int(2), byteSize: s.int(3))
        }
    }

    public func failures() throws -> [FailureRecord] {
        try database.query("SELECT path, sha256, reason FROM failures ORDER BY path") {
            FailureRecord(path: $0.string(0) ?? "", sha256: $0.string(1), reason: $0.string(2) ?? "")
        }
    }

    /// One stored vector, decoded to float32.
    public func vector(sha256: String, backbone: StoredBackbone, transform: String = "val", view: Int = 0) throws -> [Float]? {
        try database.queryFirst("""
            SELECT f.dtype, f.vector FROM features f JOIN images i ON i.id = f.image_id
            WHERE i.sha256 = ? AND f.backbone_id = ? AND f.transform = ? AND f.view = ?
            """, [.text(sha256), .integer(backbone.id), .text(transform), .int(view)]) { s in
            try Self.decodeRow(s, dtypeColumn: 0, vectorColumn: 1, dimension: backbone.dimension, context: "image \(sha256.prefix(12))")
        }
    }

    static func decodeRow(_ s: Statement, dtypeColumn: Int32, vectorColumn: Int32, dimension: Int, context: String) throws -> [Float] {
        let dtype = VectorDType(rawValue: s.string(dtypeColumn) ?? "") ?? .f32
        var out = [Float](repeating: 0, count: dimension)
        let ok = s.withBlob(vectorColumn) { bytes in
            out.withUnsafeMutableBufferPointer { VectorCodec.decode(bytes, dtype: dtype, count: dimension, into: $0.baseAddress!) }
        }
        guard ok else {
            throw StoreError.invalidVector(context: context, reason: "the stored vector has the wrong length; the store was modified outside probe")
        }
        return out
    }

    /// Transforms and views stored for a backbone, with row counts.
    public func views(backbone: StoredBackbone) throws -> [(transform: String, view: Int, count: Int)] {
        try database.query("""
            SELECT transform, view, count(*) FROM features WHERE backbone_id = ? GROUP BY transform, view ORDER BY view, transform
            """, [.integer(backbone.id)]) { ($0.string(0) ?? "", $0.int(1), $0.int(2)) }
    }

    /// Features of samples (one row per sample path, sorted by path), for training and export.
    public func labeledFeatures(backbone: StoredBackbone, split: String? = nil, label: String? = nil,
                                transform: String = "val", view: Int = 0) throws -> SampleFeatures {
        let d = backbone.dimension
        var out = SampleFeatures(dimension: d)
        let s = try database.cachedStatement("""
            SELECT s.path, s.label, s.split, i.sha256, f.dtype, f.vector
            FROM samples s JOIN images i ON i.id = s.image_id
            JOIN features f ON f.image_id = s.image_id AND f.backbone_id = ?1 AND f.transform = ?2 AND f.view = ?3
            WHERE (?4 IS NULL OR s.split = ?4) AND (?5 IS NULL OR s.label = ?5)
            ORDER BY s.path
            """)
        defer { s.reset() }
        try s.bind([.integer(backbone.id), .text(transform), .int(view), .optionalText(split), .optionalText(label)])
        var row = [Float](repeating: 0, count: d)
        while try s.step() {
            let dtype = VectorDType(rawValue: s.string(4) ?? "") ?? .f32
            let ok = s.withBlob(5) { b in row.withUnsafeMutableBufferPointer { VectorCodec.decode(b, dtype: dtype, count: d, into: $0.baseAddress!) } }
            guard ok else {
                throw StoreError.invalidVector(context: s.string(0) ?? "", reason: "the stored vector has the wrong length; the store was modified outside probe")
            }
            out.vectors.append(contentsOf: row)
            out.paths.append(s.string(0) ?? "")
            out.labels.append(s.string(1) ?? "")
            out.splits.append(s.string(2))
            out.sha256s.append(s.string(3) ?? "")
        }
        return out
    }
}

/// Row-major float32 features with their samples' paths, labels and splits.
public struct SampleFeatures: Sendable {
    public let dimension: Int
    /// count x dimension, row-major.
    public var vectors: [Float] = []
    public var paths: [String] = []
    public var labels: [String] = []
    public var splits: [String?] = []
    public var sha256s: [String] = []
    public var count: Int { paths.count }
    public init(dimension: Int) { self.dimension = dimension }
}
