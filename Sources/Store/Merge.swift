import CSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why `probe store merge` refused (nothing was written when it says so).
public enum MergeError: Error, CustomStringConvertible, Equatable {
    case noShards
    case shardMissing(String)
    case outIsAShard(out: String, shard: String)
    case outNotAStore(out: String, reason: String)
    case mixedBackbones(first: String, firstSet: [String], other: String, otherSet: [String])
    case mixedPrecision(backbone: String, first: String, firstDType: String, other: String, otherDType: String)
    case differingVector(shard: String, sha256: String, backbone: String, transform: String, view: Int)
    case shardNeedsMigration(shard: String, version: Int)

    public var description: String {
        switch self {
        case .noShards:
            return "no shard stores given: probe store merge OUT SHARD..."
        case .shardMissing(let p):
            return "no store at \(p) (a shard is the --store of one `probe extract --shard i/n` run)"
        case .outIsAShard(let out, let shard):
            return "OUT \(out) is the shard \(shard) itself: merge into a new file (merge never writes over a shard)"
        case .outNotAStore(let out, let reason):
            return "OUT \(out) exists and is not a probe store (\(reason)): merge writes only into a new file or an existing probe store; choose another OUT"
        case .mixedBackbones(let first, let a, let other, let b):
            return "refusing to mix backbones: \(first) holds [\(a.joined(separator: ", "))] but \(other) holds [\(b.joined(separator: ", "))]; "
                + "every shard (and OUT, when it has features) must come from the same --backbone and --weights: re-extract the odd one, or merge it into another OUT"
        case .mixedPrecision(let backbone, let first, let fd, let other, let od):
            return "refusing to mix feature precisions of \(backbone): \(first) stores \(fd) but \(other) stores \(od); "
                + "re-extract the odd one with --dtype \(fd), or merge it into another OUT"
        case .shardNeedsMigration(let shard, let version):
            return "\(shard) has schema version \(version), older than this probe's \(Schema.currentVersion), and merge never writes a shard: "
                + "merge a migrated copy (cp \(shard) copy.sqlite && probe store info --store copy.sqlite)"
        case .differingVector(let shard, let sha, let backbone, let transform, let view):
            return "\(shard): the vector of image \(sha.prefix(12)) (\(backbone), \(transform) view \(view)) differs from the one already in OUT "
                + "(another probe version or weights file?); nothing of this shard was merged: re-extract it, or merge into a new OUT"
        }
    }
}

/// What merging one shard added to OUT.
public struct MergeShardResult: Sendable, Codable, Equatable {
    public var path: String
    /// The shard it holds ("i/n", from its `meta`), nil for a store extracted whole.
    public var shard: String?
    /// Rows new in OUT (or changed, for samples, failures and meta) by this shard.
    public var images = 0, samples = 0, features = 0, failures = 0, meta = 0
    /// Vectors OUT had already (the same bytes): a shard merged twice adds nothing.
    public var featuresAlreadyPresent = 0
    /// Heads in the shard (not merged: train heads on the merged store).
    public var headsNotMerged = 0
    public var seconds = 0.0
}

/// What `FeatureStore.merge` did.
public struct MergeSummary: Sendable, Codable, Equatable {
    public var out: String
    /// True when OUT did not exist before.
    public var created: Bool
    public var shards: [MergeShardResult] = []
    /// OUT's rows afterwards.
    public var images = 0, samples = 0, features = 0, failures = 0
    /// E.g. shards of a split that are missing from this merge.
    public var warnings: [String] = []
    public var seconds = 0.0

    public func render() -> String {
        var s = "\(created ? "created" : "merged into") \(out): \(images) images, \(samples) samples, \(features) vectors, \(failures) failures"
        s += String(format: " (%.2f s)\n", seconds)
        for r in shards {
            s += "  \(r.path)\(r.shard.map { " (shard \($0))" } ?? ""): +\(r.images) images, +\(r.samples) samples, +\(r.features) vectors"
            if r.featuresAlreadyPresent > 0 { s += " (\(r.featuresAlreadyPresent) already there)" }
            if r.failures > 0 { s += ", +\(r.failures) failures" }
            if r.headsNotMerged > 0 { s += "; \(r.headsNotMerged) head(s) not merged" }
            s += String(format: " in %.2f s\n", r.seconds)
        }
        for w in warnings { s += "  warning: \(w)\n" }
        return s
    }
}

/// What one store holds that merging must agree on: backbones with the precision of their vectors.
struct MergeProfile {
    /// "architecture weights_sha256 dimension" of each backbone row.
    var backbones: Set<String> = []
    /// Per backbone key: the dtype of its vectors (of the first row), when it has any.
    var dtypes: [String: String] = [:]
    var shard: String?

    static func key(_ b: StoredBackbone) -> String { "\(b.architecture) \(b.weightsSHA256) \(b.dimension)" }
    static func label(_ key: String) -> String {
        let p = key.split(separator: " ")
        return p.count == 3 ? "\(p[0]) weights \(p[1].prefix(12)) \(p[2])-d" : key
    }
}

/// The page cache of OUT while merging (KiB).
let mergeCacheKiB = 512 * 1024
/// Rows per multi-row INSERT of a merge.
let mergeChunk = 1024

extension FeatureStore {
    /// The `meta` key under which a shard's store records its shard ("i/n"); merging does not copy it.
    public static let shardMetaKey = "shard"

    /// Number of sample rows (file paths).
    public func sampleCount() throws -> Int { Int(try database.scalarInt("SELECT count(*) FROM samples") ?? 0) }

    func mergeProfile() throws -> MergeProfile {
        try database.read {
            var p = MergeProfile()
            for b in try backbones() {
                let key = MergeProfile.key(b)
                p.backbones.insert(key)
                if let d = try database.scalarText("SELECT dtype FROM features WHERE backbone_id = ? LIMIT 1", [.integer(b.id)]) {
                    p.dtypes[key] = d
                }
            }
            p.shard = try metaValue(Self.shardMetaKey)
            return p
        }
    }

    /// Merges shard stores into the store at `out` (created when absent; an existing file must be a
    /// probe store), one transaction per shard. Rows are matched by content (images by sha256,
    /// samples and failures by path, vectors by image, backbone, transform and view), so merging a
    /// shard twice changes nothing, and merging the shards of a folder gives the store a single
    /// run over it would have made (same rows, same vector bytes, same `canonicalDigest`). Shards
    /// are only read. Refused before anything is written: shards (or an OUT with backbones) of
    /// different backbones or feature precisions, an OUT that is one of the shards or not a probe
    /// store. Heads of shards are not merged; the shard marker (`shardMetaKey`) is not copied.
    public static func merge(into out: String, shards: [String],
                             progress: ((_ done: Int, _ total: Int) -> Void)? = nil) throws -> MergeSummary {
        let t0 = DispatchTime.now().uptimeNanoseconds
        guard !shards.isEmpty else { throw MergeError.noShards }
        // OUT: absent, or a regular file that is a probe store and none of the shards.
        var outStat = stat()
        let outExists = lstat(out, &outStat) == 0
        if outExists {
            guard (outStat.st_mode & S_IFMT) == S_IFREG else {
                throw MergeError.outNotAStore(out: out, reason: "not a regular file")
            }
            guard outStat.st_size > 0 else { throw MergeError.outNotAStore(out: out, reason: "an empty file") }
        }
        // Shards: read-only, each checked (a probe store of this schema version).
        var profiles: [MergeProfile] = []
        for p in shards {
            var st = stat()
            guard stat(p, &st) == 0 else { throw MergeError.shardMissing(p) }
            if outExists && st.st_dev == outStat.st_dev && st.st_ino == outStat.st_ino {
                throw MergeError.outIsAShard(out: out, shard: p)
            }
            // An older store would be migrated by opening it (a write): merge never writes a shard.
            let version = try Schema.check(try FeatureStore.openReading(path: p, options: Database.Options()))
            if version < Schema.currentVersion { throw MergeError.shardNeedsMigration(shard: p, version: version) }
            let store = try FeatureStore(path: p, readOnly: true)
            profiles.append(try store.mergeProfile())
        }
        var outProfile: MergeProfile?
        if outExists {
            do {
                outProfile = try FeatureStore(path: out, readOnly: true).mergeProfile()
            } catch StoreError.notAProbeStore(_, let reason) {
                throw MergeError.outNotAStore(out: out, reason: reason)
            }
        }
        // Backbones and precisions must agree everywhere (stores without backbones have nothing to mix).
        var named = zip(shards, profiles).map { ($0, $1) }
        if let o = outProfile { named.insert((out + " (OUT)", o), at: 0) }
        if let (firstName, first) = named.first(where: { !$0.1.backbones.isEmpty }) {
            for (name, p) in named where !p.backbones.isEmpty && p.backbones != first.backbones {
                throw MergeError.mixedBackbones(first: firstName, firstSet: first.backbones.sorted().map(MergeProfile.label),
                                                other: name, otherSet: p.backbones.sorted().map(MergeProfile.label))
            }
        }
        var dtypeOwner: [String: (name: String, dtype: String)] = [:]
        for (name, p) in named {
            for (key, d) in p.dtypes.sorted(by: { $0.key < $1.key }) {
                if let seen = dtypeOwner[key] {
                    if seen.dtype != d {
                        throw MergeError.mixedPrecision(backbone: MergeProfile.label(key), first: seen.name, firstDType: seen.dtype,
                                                        other: name, otherDType: d)
                    }
                } else { dtypeOwner[key] = (name, d) }
            }
        }

        let target = try FeatureStore(path: out)
        // Bulk writing: a page cache that holds the growing indexes (sha256, path: random inserts),
        // and, while nobody else has OUT open, a rollback journal instead of the WAL (appended pages
        // are then written once, not to the WAL and again by the checkpoint; every shard's
        // transaction stays atomic). OUT is back in WAL mode at the end.
        let db = target.database
        try db.execute("PRAGMA cache_size = -\(mergeCacheKiB)")
        try db.execute("PRAGMA temp_store = MEMORY")
        let journaled = (try? db.scalarText("PRAGMA journal_mode = DELETE"))?.lowercased() == "delete"
        defer {
            if journaled { _ = try? db.scalarText("PRAGMA journal_mode = WAL") }
            try? db.execute("PRAGMA cache_size = -\(Database.Options().cacheKiB)")
        }
        var summary = MergeSummary(out: out, created: !outExists)
        summary.warnings = shardWarnings(profiles.map(\.shard))
        for (i, p) in shards.enumerated() {
            // Read with read(2) rather than a memory map: fewer page faults, and the shard's pages do
            // not count in this process's resident memory.
            var o = Database.Options()
            o.readOnly = true
            o.mmapSize = 0
            let source = try FeatureStore(path: p, options: o)
            var r = try target.mergeOne(source, dtypes: dtypeOwner.mapValues(\.dtype))
            r.shard = profiles[i].shard
            summary.shards.append(r)
            progress?(i + 1, shards.count)
        }
        try db.read {
            summary.images = Int(try db.scalarInt("SELECT count(*) FROM images") ?? 0)
            summary.samples = Int(try db.scalarInt("SELECT count(*) FROM samples") ?? 0)
            summary.features = Int(try db.scalarInt("SELECT count(*) FROM features") ?? 0)
            summary.failures = Int(try db.scalarInt("SELECT count(*) FROM failures") ?? 0)
        }
        summary.seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return summary
    }

    /// Notes on the shard markers of a merge: shards of different counts, missing indices.
    static func shardWarnings(_ specs: [String?]) -> [String] {
        let parsed = specs.compactMap { s -> (Int, Int)? in
            guard let s else { return nil }
            let p = s.split(separator: "/")
            guard p.count == 2, let i = Int(p[0]), let n = Int(p[1]) else { return nil }
            return (i, n)
        }
        guard !parsed.isEmpty else { return [] }
        let counts = Set(parsed.map(\.1))
        if counts.count > 1 {
            return ["these shards come from splits into different numbers of shards (\(counts.sorted().map(String.init).joined(separator: ", "))): check that every image is covered"]
        }
        let n = counts.first!
        let missing = Set(0..<n).subtracting(parsed.map(\.0)).sorted()
        if missing.isEmpty { return [] }
        return ["shard\(missing.count == 1 ? "" : "s") \(missing.map { "\($0)/\(n)" }.joined(separator: ", ")) not in this merge: OUT lacks their images until they are merged too"]
    }

    /// Copies one store's rows into this one, in one transaction, streaming each table with
    /// prepared statements (memory: one id map of the shard's images). Rows are written by
    /// multi-row INSERTs of `mergeChunk` rows: SQLite keeps a statement journal for every
    /// statement on these tables (triggers, foreign keys), which copies each page the statement
    /// touches; per row, that was most of the merge's time.
    func mergeOne(_ source: FeatureStore, dtypes: [String: String]) throws -> MergeShardResult {
        let t0 = DispatchTime.now().uptimeNanoseconds
        var r = MergeShardResult(path: source.path)
        let src = source.database
        let db = database
        try src.read {
            try db.transaction {
                // Backbones: by architecture and weights.
                var backboneIDs: [Int64: (id: Int64, key: String)] = [:]
                for b in try source.backbones() {
                    let mine: StoredBackbone
                    if let q = try source.quantization(backboneID: b.id) {
                        mine = try int8Backbone(architecture: b.architecture, weightsSHA256: q.weightsSHA256, dimension: b.dimension,
                                                calibration: q.calibration, identity: b.weightsSHA256)
                    } else {
                        mine = try backbone(architecture: b.architecture, weightsSHA256: b.weightsSHA256, dimension: b.dimension)
                    }
                    backboneIDs[b.id] = (mine.id, MergeProfile.key(b))
                }
                // Images: by sha256; a size learned by decoding fills a NULL one.
                var imageIDs: [Int64: Int64] = [:]
                let findImage = try db.prepare("SELECT id, width IS NULL AND height IS NULL FROM images WHERE sha256 = ?1")
                let fillSize = try db.prepare("UPDATE images SET width = ?2, height = ?3 WHERE id = ?1")
                let insertImages = ChunkedInsert(db, "INSERT INTO images(sha256, width, height, byte_size) VALUES ", columns: 4)
                var pendingImages: [(shardID: Int64, sha: String)] = []
                func flushImages() throws {
                    r.images += try insertImages.flush()
                    for p in pendingImages {
                        findImage.reset()
                        try findImage.bind(p.sha, at: 1)
                        guard try findImage.step() else { throw StoreError.notFound("image \(p.sha) after inserting it") }
                        imageIDs[p.shardID] = findImage.int64(0)
                    }
                    pendingImages.removeAll(keepingCapacity: true)
                }
                let images = try src.prepare("SELECT id, sha256, width, height, byte_size FROM images ORDER BY id")
                while try images.step() {
                    let sha = images.string(1) ?? ""
                    findImage.reset()
                    try findImage.bind(sha, at: 1)
                    if try findImage.step() {
                        let id = findImage.int64(0)
                        imageIDs[images.int64(0)] = id
                        if findImage.int(1) == 1 && !images.isNull(2) {
                            fillSize.reset()
                            try fillSize.bind([.integer(id), .integer(images.int64(2)), images.isNull(3) ? .null : .integer(images.int64(3))])
                            _ = try fillSize.step()
                        }
                        continue
                    }
                    pendingImages.append((images.int64(0), sha))
                    try insertImages.add([.text(sha), images.isNull(2) ? .null : .integer(images.int64(2)),
                                          images.isNull(3) ? .null : .integer(images.int64(3)), .integer(images.int64(4))])
                    if insertImages.isFull { try flushImages() }
                }
                try flushImages()
                func mapped(_ id: Int64) throws -> Int64 {
                    guard let m = imageIDs[id] else { throw StoreError.notFound("image id \(id) of \(source.path)") }
                    return m
                }
                // Samples: by path (a split once set is kept, as extraction keeps it).
                let hadFailures = try db.scalarInt("SELECT EXISTS (SELECT 1 FROM failures)") == 1
                let upsertSamples = ChunkedInsert(db, "INSERT INTO samples(path, image_id, label, split, mtime_ns) VALUES ", columns: 5, suffix: """
                     ON CONFLICT(path) DO UPDATE SET image_id = excluded.image_id, label = excluded.label,
                        split = coalesce(excluded.split, split), mtime_ns = excluded.mtime_ns
                    WHERE image_id IS NOT excluded.image_id OR label IS NOT excluded.label
                        OR split IS NOT coalesce(excluded.split, split) OR mtime_ns IS NOT excluded.mtime_ns
                    """)
                let dropFailure = try db.prepare("DELETE FROM failures WHERE path = ?1")
                let samples = try src.prepare("SELECT path, image_id, label, split, mtime_ns FROM samples ORDER BY rowid")
                while try samples.step() {
                    let path = samples.string(0) ?? ""
                    try upsertSamples.add([.text(path), .integer(try mapped(samples.int64(1))), .text(samples.string(2) ?? ""),
                                           samples.isNull(3) ? .null : .text(samples.string(3) ?? ""),
                                           samples.isNull(4) ? .null : .integer(samples.int64(4))])
                    if upsertSamples.isFull { r.samples += try upsertSamples.flush() }
                    if hadFailures {
                        dropFailure.reset()
                        try dropFailure.bind(path, at: 1)
                        _ = try dropFailure.step()
                    }
                }
                r.samples += try upsertSamples.flush()
                // Vectors: by (image, backbone, transform, view); one already there must have the same bytes.
                let insertFeatures = ChunkedInsert(db, "INSERT INTO features(image_id, backbone_id, transform, view, dtype, vector) VALUES ",
                                                   columns: 6, suffix: " ON CONFLICT(image_id, backbone_id, transform, view) DO NOTHING")
                let existing = try db.prepare("""
                    SELECT dtype = ?5 AND vector = ?6 FROM features WHERE image_id = ?1 AND backbone_id = ?2 AND transform = ?3 AND view = ?4
                    """)
                var pendingFeatures: [(values: [SQLValue], sha: String, backbone: String)] = []
                func flushFeatures() throws {
                    let inserted = try insertFeatures.flush()
                    r.features += inserted
                    // Some were there already: each of the chunk must now hold exactly these bytes.
                    if inserted < pendingFeatures.count {
                        for p in pendingFeatures {
                            existing.reset()
                            try existing.bind(p.values)
                            guard try existing.step(), existing.int(0) == 1 else {
                                guard case .text(let transform) = p.values[2], case .integer(let view) = p.values[3] else { continue }
                                throw MergeError.differingVector(shard: source.path, sha256: p.sha, backbone: p.backbone,
                                                                 transform: transform, view: Int(view))
                            }
                        }
                        r.featuresAlreadyPresent += pendingFeatures.count - inserted
                    }
                    pendingFeatures.removeAll(keepingCapacity: true)
                }
                let features = try src.prepare("""
                    SELECT f.image_id, f.backbone_id, f.transform, f.view, f.dtype, f.vector, i.sha256
                    FROM features f JOIN images i ON i.id = f.image_id ORDER BY f.rowid
                    """)
                while try features.step() {
                    guard let b = backboneIDs[features.int64(1)] else { throw StoreError.notFound("backbone id \(features.int64(1)) of \(source.path)") }
                    let dtype = features.string(4) ?? ""
                    if let want = dtypes[b.key], want != dtype {
                        throw MergeError.mixedPrecision(backbone: MergeProfile.label(b.key), first: "the other stores", firstDType: want,
                                                        other: source.path, otherDType: dtype)
                    }
                    let values: [SQLValue] = [.integer(try mapped(features.int64(0))), .integer(b.id), .text(features.string(2) ?? ""),
                                              .integer(features.int64(3)), .text(dtype), .blob(features.blob(5))]
                    try insertFeatures.add(values)
                    pendingFeatures.append((values, features.string(6) ?? "", MergeProfile.label(b.key)))
                    if insertFeatures.isFull { try flushFeatures() }
                }
                try flushFeatures()
                // Failures: by path (a failing path loses its sample, as in extraction).
                let upsertFailure = try db.prepare("""
                    INSERT INTO failures(path, sha256, reason) VALUES (?1, ?2, ?3)
                    ON CONFLICT(path) DO UPDATE SET sha256 = excluded.sha256, reason = excluded.reason
                    WHERE sha256 IS NOT excluded.sha256 OR reason IS NOT excluded.reason
                    """)
                let dropSample = try db.prepare("DELETE FROM samples WHERE path = ?1")
                let failures = try src.prepare("SELECT path, sha256, reason FROM failures ORDER BY rowid")
                while try failures.step() {
                    let path = failures.string(0) ?? ""
                    upsertFailure.reset()
                    try upsertFailure.bind(path, at: 1)
                    if !failures.isNull(1), let h = failures.string(1) { try upsertFailure.bind(h, at: 2) } else { try upsertFailure.bindNull(at: 2) }
                    try upsertFailure.bind(failures.string(2) ?? "", at: 3)
                    _ = try upsertFailure.step()
                    r.failures += Int(sqlite3_changes(db.handle))
                    dropSample.reset()
                    try dropSample.bind(path, at: 1)
                    _ = try dropSample.step()
                }
                // Meta: everything but the schema note and the shard marker (e.g. remembered weight hashes).
                let upsertMeta = try db.prepare("""
                    INSERT INTO meta(key, value) VALUES (?1, ?2)
                    ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE value IS NOT excluded.value
                    """)
                let meta = try src.prepare("SELECT key, value FROM meta WHERE key NOT IN ('schema', ?1) ORDER BY key")
                try meta.bind(Self.shardMetaKey, at: 1)
                while try meta.step() {
                    upsertMeta.reset()
                    try upsertMeta.bind(meta.string(0) ?? "", at: 1)
                    try upsertMeta.bind(meta.string(1) ?? "", at: 2)
                    _ = try upsertMeta.step()
                    r.meta += Int(sqlite3_changes(db.handle))
                }
                r.headsNotMerged = Int(try src.scalarInt("SELECT count(*) FROM heads") ?? 0)
            }
        }
        r.seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return r
    }
}

/// Rows written by multi-row INSERT statements: `add` collects up to `rows` rows, `flush` runs
/// `head (?,..),(?,..)... suffix` over them (a full chunk's statement is prepared once) and returns
/// `sqlite3_changes`.
final class ChunkedInsert {
    let db: Database
    let head: String, suffix: String
    let columns: Int, rows: Int
    private var values: [SQLValue] = []
    private var full: Statement?

    init(_ db: Database, _ head: String, columns: Int, suffix: String = "", rows: Int = mergeChunk) {
        self.db = db; self.head = head; self.columns = columns; self.suffix = suffix; self.rows = rows
        values.reserveCapacity(columns * rows)
    }

    var isFull: Bool { values.count >= columns * rows }

    func add(_ row: [SQLValue]) throws { values += row }

    func flush() throws -> Int {
        let n = values.count / columns
        guard n > 0 else { return 0 }
        let st: Statement
        if n == rows, let full { st = full } else {
            let one = "(" + Array(repeating: "?", count: columns).joined(separator: ",") + ")"
            st = try db.prepare(head + Array(repeating: one, count: n).joined(separator: ",") + suffix)
            if n == rows { full = st }
        }
        st.reset()
        try st.bind(values)
        _ = try st.step()
        st.reset()
        values.removeAll(keepingCapacity: true)
        return Int(sqlite3_changes(db.handle))
    }
}
