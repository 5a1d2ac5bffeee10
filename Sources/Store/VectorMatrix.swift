import Foundation
import Parallelism

/// Which vectors to load (`FeatureStore.loadVectors`).
public struct VectorFilter: Sendable, Equatable {
    /// Only images with a sample in this split / with this label (nil: all).
    public var split: String?
    public var label: String?
    public var transform: String
    public var view: Int
    public init(split: String? = nil, label: String? = nil, transform: String = "val", view: Int = 0) {
        self.split = split; self.label = label; self.transform = transform; self.view = view
    }
}

/// The vectors of one backbone as one contiguous row-major float32 matrix (count x dimension), as
/// stored (not normalised), with the image id of every row: what a search index is built on
/// (module Neighbors). The matrix owns its memory; whoever builds an index from it may rewrite the
/// rows in place (`data`) and keeps the matrix alive as long as it uses them.
public final class VectorMatrix: @unchecked Sendable {
    public let dimension: Int
    public let count: Int
    /// The image id of every row.
    public let imageIDs: [Int64]
    /// count x dimension floats, row-major.
    public let data: UnsafeMutablePointer<Float>
    /// Bytes of an anonymous mapping holding `data`, or 0 when it was malloc'ed.
    let mapped: Int

    init(dimension: Int, count: Int, imageIDs: [Int64], data: UnsafeMutablePointer<Float>, mapped: Int = 0) {
        self.dimension = dimension; self.count = count; self.imageIDs = imageIDs; self.data = data; self.mapped = mapped
    }

    /// A copy of row-major vectors (`imageIDs.count` rows of `dimension`).
    public convenience init(vectors: [Float], dimension: Int, imageIDs: [Int64]) throws {
        guard dimension > 0, vectors.count == dimension * imageIDs.count else {
            throw StoreError.dimensionMismatch(expected: dimension * imageIDs.count, got: vectors.count, context: "VectorMatrix(vectors:)")
        }
        let n = imageIDs.count
        guard let (p, mapped) = allocateMatrix(n * dimension) else {
            throw StoreError.invalidArgument("out of memory for \(n) vectors")
        }
        vectors.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: n * dimension) }
        self.init(dimension: dimension, count: n, imageIDs: imageIDs, data: p, mapped: mapped)
    }

    deinit { releaseMatrix(data, mapped: mapped) }
}

/// Memory for `count` floats. Large matrices come from an anonymous mapping populated at once
/// (MAP_POPULATE, Linux): measured here, first-touch page faults of 2 GB cost 2-3 s one by one
/// and 10 s with transparent huge pages (compaction), against 1.3-2.3 s populated. Returns the
/// pointer and the mapped byte count (0 when malloc'ed); release with `releaseMatrix`.
func allocateMatrix(_ count: Int) -> (UnsafeMutablePointer<Float>, mapped: Int)? {
    let bytes = max(1, count) * MemoryLayout<Float>.stride
    #if os(Linux)
    if bytes >= 1 << 24 {
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
        if let p, p != MAP_FAILED { return (p.assumingMemoryBound(to: Float.self), bytes) }
    }
    #endif
    guard let p = malloc(bytes) else { return nil }
    return (p.assumingMemoryBound(to: Float.self), 0)
}

func releaseMatrix(_ p: UnsafeMutablePointer<Float>, mapped: Int) {
    #if os(Linux)
    if mapped > 0 { munmap(p, mapped); return }
    #endif
    free(p)
}


/// Decodes the current row of a statement (columns: image_id, dtype, vector) into `dst`.
@inline(__always)
private func loadRow(_ s: Statement, _ d: Int, into dst: UnsafeMutablePointer<Float>) -> Bool {
    let f16: Bool = s.withBlob(1) { $0.count == 3 && $0[1] == 0x31 }  // "f16"
    return s.withBlob(2) { b -> Bool in VectorCodec.decode(b, dtype: f16 ? .f16 : .f32, count: d, into: dst) }
}

/// Runs body(0..<iterations) at once, one worker each (the parts of a load, each on its own
/// connection); the caller keeps the iterations disjoint.
private func concurrentParts(_ iterations: Int, _ body: (Int) -> Void) {
    parallelSlices(iterations, workers: iterations) { _, parts in
        for part in parts { body(part) }
    }
}

private final class LoadError: @unchecked Sendable {
    var error: Error?
    let lock = NSLock()
    func set(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
}

/// At most this many parts (connections) load vectors at once.
let maxIndexLoadParts = 16

extension FeatureStore {
    /// Loads the vectors of one backbone (optionally only images with a sample in `filter.split`
    /// / with `filter.label`) into one contiguous matrix, rows decoded straight into it, in rowid
    /// order. Without a filter, `workers` threads (at most 16) scan consecutive rowid ranges of the
    /// table, each on its own read-only connection but the first; rows committed by a writer
    /// during loading are left out. The rows and their order do not depend on the number of workers.
    public func loadVectors(backbone: StoredBackbone, filter: VectorFilter = VectorFilter(), workers: Int) throws -> VectorMatrix {
        try loadVectors(backbone: backbone, filter: filter, parallelThreshold: 20_000, workers: workers)
    }

    /// `parallelThreshold`: fewer rows than this load on one connection whatever `workers` says.
    func loadVectors(backbone: StoredBackbone, filter: VectorFilter, parallelThreshold: Int, workers: Int) throws -> VectorMatrix {
        if filter.split != nil || filter.label != nil { return try loadVectorsFiltered(backbone: backbone, filter: filter) }
        let d = backbone.dimension
        let args: [SQLValue] = [.integer(backbone.id), .text(filter.transform), .int(filter.view)]
        // One snapshot for the rowid range and the row count of every part. Part i holds rowids
        // starts[i]..<starts[i + 1]; it is written from row offsets[i] up.
        let (starts, counts) = try database.read { () -> ([Int64], [Int]) in
            let range = try database.queryFirst("SELECT min(rowid), max(rowid) FROM features") { ($0.int64(0), $0.int64(1)) } ?? (0, 0)
            let (lo, hi) = range
            let span = UInt64(bitPattern: hi &- lo) &+ 1
            let wanted = max(1, min(workers, maxIndexLoadParts))
            let p = span == 0 ? 1 : Int(min(UInt64(wanted), span))  // span 0: the whole Int64 range
            let q = span / UInt64(p), r = span % UInt64(p)
            var starts: [Int64] = (0..<p).map { i in lo &+ Int64(bitPattern: q &* UInt64(i) &+ min(UInt64(i), r)) }
            starts.append(hi &+ 1)
            // count(*), then the rows below each inner boundary: one scan of the features index.
            let below = (1..<p).map { ", sum(rowid < ?\($0 + 3))" }.joined()
            let sql = "SELECT count(*)\(below) FROM features WHERE backbone_id = ?1 AND transform = ?2 AND view = ?3"
            let cumulative = try database.queryFirst(sql, args + starts[1..<p].map { .integer($0) }) { s in
                (0..<Int32(p)).map { s.isNull($0) ? 0 : Int(s.int64($0)) }
            } ?? Array(repeating: 0, count: p)
            let total = cumulative[0]
            let below2 = Array(cumulative.dropFirst()) + [total]
            let counts = (0..<p).map { i in below2[i] - (i == 0 ? 0 : below2[i - 1]) }
            return (starts, counts)
        }
        let total = counts.reduce(0, +)
        guard total > 0 else {
            guard let (p, mapped) = allocateMatrix(d) else { throw StoreError.invalidArgument("out of memory") }
            return VectorMatrix(dimension: d, count: 0, imageIDs: [], data: p, mapped: mapped)
        }
        // Small loads: one part (this connection) over the whole range.
        let parts: [(lo: Int64, hi: Int64, offset: Int, count: Int)]
        if total < parallelThreshold || counts.count == 1 {
            parts = [(starts[0], starts[starts.count - 1] &- 1, 0, total)]
        } else {
            var offset = 0
            parts = counts.indices.map { i in
                defer { offset += counts[i] }
                return (starts[i], starts[i + 1] &- 1, offset, counts[i])
            }
        }
        guard let (data, mapped) = allocateMatrix(total * d) else {
            throw StoreError.invalidArgument("out of memory: \(total) vectors of dimension \(d) need \(formatBytes(Int64(total * d * 4)))")
        }
        var ids = [Int64](repeating: 0, count: total)
        // Rows present at the snapshot with rowid <= hi are all that any part can see (new rows
        // get higher rowids; updates keep theirs), so a part finds at most the rows counted in its
        // range, fewer when some were deleted meanwhile.
        var found = [Int](repeating: 0, count: parts.count)
        let failure = LoadError()
        let path = self.path
        let main = database
        ids.withUnsafeMutableBufferPointer { idp in
            found.withUnsafeMutableBufferPointer { fp in
                concurrentParts(parts.count) { part in
                    do {
                        // Rows are read with read(2), not through SQLite's memory map: mapped file
                        // pages count in the process's resident memory (the whole table, 2.5 GB
                        // for a million 512-d rows, on top of the matrix), read ones stay in the
                        // kernel's page cache.
                        let db: Database
                        if part == 0 {
                            db = main
                            try db.execute("PRAGMA mmap_size = 0")
                        } else {
                            var o = Database.Options()
                            o.readOnly = true
                            o.mmapSize = 0
                            db = try Database(path: path, options: o)
                        }
                        defer { if part == 0 { try? db.execute("PRAGMA mmap_size = \(Database.Options().mmapSize)") } }
                        // NOT INDEXED: a rowid range scan, never an index of backbone_id plus a sort
                        // of every vector by rowid (which SQLite's planner may otherwise pick).
                        let s = try db.prepare("""
                            SELECT image_id, dtype, vector FROM features NOT INDEXED
                            WHERE backbone_id = ?1 AND transform = ?2 AND view = ?3 AND rowid BETWEEN ?4 AND ?5
                            ORDER BY rowid
                            """)
                        try s.bind(args + [.integer(parts[part].lo), .integer(parts[part].hi)])
                        defer { s.reset() }
                        let offset = parts[part].offset, limit = parts[part].count
                        var n = 0
                        try db.read {
                            while try s.step() {
                                guard n < limit else {
                                    throw StoreError.invalidArgument("the store changed while loading; load again")
                                }
                                let r = offset + n
                                guard loadRow(s, d, into: data + r * d) else {
                                    throw StoreError.invalidVector(context: "image id \(s.int64(0))",
                                                                   reason: "the stored vector has the wrong length; the store was modified outside probe")
                                }
                                idp[r] = s.int64(0)
                                n += 1
                            }
                        }
                        fp[part] = n
                    } catch { failure.set(error) }
                }
            }
        }
        if let e = failure.error { releaseMatrix(data, mapped: mapped); throw e }
        // Rows deleted meanwhile: close the gaps, parts in order.
        var rows = 0
        for (i, part) in parts.enumerated() {
            let n = found[i]
            if rows != part.offset && n > 0 {
                memmove(data + rows * d, data + part.offset * d, n * d * 4)
                for j in 0..<n { ids[rows + j] = ids[part.offset + j] }
            }
            rows += n
        }
        if rows < total { ids.removeLast(total - rows) }
        return VectorMatrix(dimension: d, count: rows, imageIDs: ids, data: data, mapped: mapped)
    }

    func loadVectorsFiltered(backbone: StoredBackbone, filter: VectorFilter) throws -> VectorMatrix {
        let d = backbone.dimension
        let sql = """
            SELECT f.image_id, f.dtype, f.vector FROM features f
            WHERE f.backbone_id = ?1 AND f.transform = ?2 AND f.view = ?3
              AND EXISTS (SELECT 1 FROM samples s WHERE s.image_id = f.image_id
                          AND (?4 IS NULL OR s.split = ?4) AND (?5 IS NULL OR s.label = ?5))
            """
        return try database.read {
            let s = try database.cachedStatement(sql)
            defer { s.reset() }
            try s.bind([.integer(backbone.id), .text(filter.transform), .int(filter.view),
                        .optionalText(filter.split), .optionalText(filter.label)])
            var capacity = 1024
            var data = malloc(capacity * d * 4)!.assumingMemoryBound(to: Float.self)
            var ids: [Int64] = []
            var n = 0
            do {
                while try s.step() {
                    if n == capacity {
                        capacity *= 2
                        guard let p = realloc(data, capacity * d * 4) else {
                            throw StoreError.invalidArgument("out of memory loading \(capacity) vectors of dimension \(d)")
                        }
                        data = p.assumingMemoryBound(to: Float.self)
                    }
                    guard loadRow(s, d, into: data + n * d) else {
                        throw StoreError.invalidVector(context: "image id \(s.int64(0))", reason: "the stored vector has the wrong length; the store was modified outside probe")
                    }
                    ids.append(s.int64(0))
                    n += 1
                }
            } catch {
                free(data)
                throw error
            }
            return VectorMatrix(dimension: d, count: n, imageIDs: ids, data: data)
        }
    }
}
