import Foundation
import NN

/// One neighbour of a query: the row of the index, its image, and the cosine similarity.
public struct Neighbor: Sendable, Equatable, Codable {
    public let row: Int
    public let imageID: Int64
    public let score: Float
}

/// Which vectors to load into an index.
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

/// All vectors of one backbone, L2-normalised, in one contiguous row-major float32 matrix, for
/// exact cosine nearest-neighbour search by matrix products. Immutable after loading.
public final class VectorIndex: @unchecked Sendable {
    public let dimension: Int
    public let count: Int
    /// The image id of every row.
    public let imageIDs: [Int64]
    /// count x dimension, rows of unit length (zero vectors stay zero).
    let data: UnsafeMutablePointer<Float>
    /// Bytes of an anonymous mapping holding `data`, or 0 when it was malloc'ed.
    let mapped: Int

    init(dimension: Int, count: Int, imageIDs: [Int64], data: UnsafeMutablePointer<Float>, mapped: Int = 0) {
        self.dimension = dimension; self.count = count; self.imageIDs = imageIDs; self.data = data; self.mapped = mapped
    }

    /// Builds an index from row-major vectors (normalising a copy).
    public convenience init(vectors: [Float], dimension: Int, imageIDs: [Int64]) throws {
        guard dimension > 0, vectors.count == dimension * imageIDs.count else {
            throw StoreError.dimensionMismatch(expected: dimension * imageIDs.count, got: vectors.count, context: "VectorIndex(vectors:)")
        }
        let n = imageIDs.count
        guard let (p, mapped) = allocateMatrix(n * dimension) else {
            throw StoreError.invalidArgument("out of memory for \(n) vectors")
        }
        vectors.withUnsafeBufferPointer { src in
            for r in 0..<n { normaliseRow(src.baseAddress! + r * dimension, into: p + r * dimension, dimension) }
        }
        self.init(dimension: dimension, count: n, imageIDs: imageIDs, data: p, mapped: mapped)
    }

    deinit { releaseMatrix(data, mapped: mapped) }

    /// The normalised vector of a row.
    public func row(_ r: Int) -> [Float] {
        guard r >= 0 && r < count else { return [] }
        return Array(UnsafeBufferPointer(start: data + r * dimension, count: dimension))
    }

    /// The row of an image, if loaded.
    public func row(imageID: Int64) -> Int? { imageIDs.firstIndex(of: imageID) }

    /// The k rows most similar (cosine) to `query`, best first; ties go to the lower row.
    public func search(_ query: [Float], k: Int, workers: Int = defaultWorkerCount) throws -> [Neighbor] {
        try search(queries: query, k: k, workers: workers).first ?? []
    }

    /// Top-k for many queries at once (row-major, m x dimension): the scores of blocks of rows
    /// come from matrix products (sgemm) over pieces of `pieceRows` rows, and each query keeps a
    /// min-heap of its k best. `workers` split the pieces (BLAS itself runs single-threaded
    /// meanwhile), the rows of one query's dot products, and the queries' selections. Piece
    /// boundaries do not depend on the worker count, so every score is computed the same way
    /// whatever it is, and so are the neighbours, their order and their ties (to the lower row).
    public func search(queries: [Float], k: Int, workers: Int = defaultWorkerCount) throws -> [[Neighbor]] {
        let d = dimension
        guard !queries.isEmpty, queries.count % d == 0 else {
            throw StoreError.dimensionMismatch(expected: d, got: queries.count, context: "query vectors (a multiple of the dimension)")
        }
        for (i, x) in queries.enumerated() where !x.isFinite {
            throw StoreError.invalidVector(context: "query", reason: "value \(i) is \(x)")
        }
        let m = queries.count / d
        let k = min(max(k, 0), count)
        if k == 0 || count == 0 { return Array(repeating: [], count: m) }
        // Normalised queries.
        let q = UnsafeMutablePointer<Float>.allocate(capacity: m * d)
        defer { q.deallocate() }
        queries.withUnsafeBufferPointer { src in
            for i in 0..<m { normaliseRow(src.baseAddress! + i * d, into: q + i * d, d) }
        }
        // Block of rows: keep the score block near 16 MB, at least 1024 rows.
        let blockRows = max(1024, min(count, (4 << 20) / max(1, m)))
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: m * blockRows)
        defer { scores.deallocate() }
        let heapScores = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
        let heapRows = UnsafeMutablePointer<Int>.allocate(capacity: m * k)
        defer { heapScores.deallocate(); heapRows.deallocate() }
        let heapSizes = UnsafeMutablePointer<Int>.allocate(capacity: m)
        heapSizes.initialize(repeating: 0, count: m)
        defer { heapSizes.deallocate() }

        // Each query's heap is fed by one worker, block after block in row order.
        let selectWorkers = m >= 8 ? max(1, workers) : 1
        let savedBLASThreads = blasThreads()
        if m > 1 { setBLASThreads(1) }
        defer { if m > 1 { setBLASThreads(savedBLASThreads) } }
        var r0 = 0
        while r0 < count {
            let nb = min(blockRows, count - r0)
            if m == 1 {
                matVec(data + r0 * d, rows: nb, d, q, scores, workers: workers)
            } else {
                scoreBlock(q, m, rows: r0..<(r0 + nb), into: scores, workers: workers)
            }
            let base = r0
            parallelSlices(m, workers: selectWorkers) { _, slice in
                for qi in slice {
                    selectTopK(scores + qi * nb, nb, base: base, k: k,
                               heapScores + qi * k, heapRows + qi * k, &heapSizes[qi])
                }
            }
            r0 += nb
        }
        var results: [[Neighbor]] = []
        results.reserveCapacity(m)
        for qi in 0..<m {
            var pairs = (0..<heapSizes[qi]).map { (heapScores[qi * k + $0], heapRows[qi * k + $0]) }
            pairs.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
            results.append(pairs.map { Neighbor(row: $0.1, imageID: imageIDs[$0.1], score: $0.0) })
        }
        return results
    }
}

extension VectorIndex {
    /// Rows per matrix product of `search(queries:k:)`: a fixed size, not a share of the workers.
    static let pieceRows = 256

    /// scores (m x rows.count, row-major) = queries (m x d) times the rows' vectors transposed, one
    /// sgemm per piece of `pieceRows` rows, the pieces split between `workers`. Call with BLAS
    /// single-threaded.
    func scoreBlock(_ q: UnsafePointer<Float>, _ m: Int, rows: Range<Int>, into scores: UnsafeMutablePointer<Float>, workers: Int) {
        let d = dimension, nb = rows.count, piece = VectorIndex.pieceRows
        let data = self.data
        parallelSlices((nb + piece - 1) / piece, workers: max(1, workers)) { _, pieces in
            for p in pieces {
                let c0 = p * piece
                sgemm(transA: false, transB: true, m: m, n: min(piece, nb - c0), k: d, a: q, lda: d,
                      b: data + (rows.lowerBound + c0) * d, ldb: d, c: scores + c0, ldc: nb)
            }
        }
    }

    /// The matrix products of `search(queries:k:)` without the selection: a timing diagnostic
    /// for benchmarks (the scores are thrown away).
    public func scoreOnly(queries: [Float], workers: Int = defaultWorkerCount) {
        let d = dimension, m = queries.count / d
        let blockRows = max(1024, min(count, (4 << 20) / max(1, m)))
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: m * blockRows)
        defer { scores.deallocate() }
        let savedBLASThreads = blasThreads()
        setBLASThreads(1)
        defer { setBLASThreads(savedBLASThreads) }
        queries.withUnsafeBufferPointer { q in
            var r0 = 0
            while r0 < count {
                let nb = min(blockRows, count - r0)
                scoreBlock(q.baseAddress!, m, rows: r0..<(r0 + nb), into: scores, workers: workers)
                r0 += nb
            }
        }
    }
}

/// y[r] = dot(a[r, :], x) for a block of rows, the rows split between `workers` when there are
/// many (each y[r] is one dot product, whoever computes it).
private func matVec(_ a: UnsafePointer<Float>, rows: Int, _ d: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                    workers: Int) {
    parallelSlices(rows, workers: rows >= 4096 ? max(1, workers) : 1) { _, slice in
        for r in slice { y[r] = dot(a + r * d, x, d) }
    }
}

private struct UncheckedBox<T>: @unchecked Sendable { let value: T }

/// Runs body(0..<iterations) on Dispatch's worker threads (long, independent tasks such as the
/// parts of an index load); the caller keeps the iterations disjoint.
func parallelFor(_ iterations: Int, _ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { b in
        let box = UncheckedBox(value: b)
        DispatchQueue.concurrentPerform(iterations: iterations) { box.value($0) }
    }
}

@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 32 <= n {
        acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        acc1 += ra.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self) * rb.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self)
        i += 32
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// Copies a row scaled to unit L2 norm (a zero row stays zero).
@inline(__always)
func normaliseRow(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, _ d: Int) {
    let n2 = dot(src, src, d)
    let scale: Float = n2 > 0 ? 1 / n2.squareRoot() : 0
    for i in 0..<d { dst[i] = src[i] * scale }
}

/// Copies little-endian float32 bytes (any alignment) scaled to unit L2 norm.
@inline(__always)
func normaliseRaw(_ src: UnsafeRawPointer, into dst: UnsafeMutablePointer<Float>, _ d: Int) {
    #if _endian(little)
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= d {
        let v = src.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        acc += v * v
        i += 16
    }
    var n2 = acc.sum()
    while i < d { let x = src.loadUnaligned(fromByteOffset: i * 4, as: Float.self); n2 += x * x; i += 1 }
    let scale: Float = n2 > 0 ? 1 / n2.squareRoot() : 0
    let out = UnsafeMutableRawPointer(dst)
    i = 0
    while i + 16 <= d {
        out.storeBytes(of: src.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * scale, toByteOffset: i * 4, as: SIMD16<Float>.self)
        i += 16
    }
    while i < d { dst[i] = src.loadUnaligned(fromByteOffset: i * 4, as: Float.self) * scale; i += 1 }
    #else
    UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: d * 4)
    for i in 0..<d { dst[i] = Float(bitPattern: UInt32(littleEndian: dst[i].bitPattern)) }
    normaliseRow(dst, into: dst, d)
    #endif
}

/// Feeds scores[0..<n] (rows base..<base+n) into a min-heap of the k best (root = worst kept).
@inline(__always)
private func selectTopK(_ scores: UnsafePointer<Float>, _ n: Int, base: Int, k: Int,
                        _ hs: UnsafeMutablePointer<Float>, _ hr: UnsafeMutablePointer<Int>, _ size: inout Int) {
    var i = 0
    // Fill.
    while size < k && i < n {
        var c = size
        hs[c] = scores[i]; hr[c] = base + i
        size += 1
        while c > 0 {  // sift up: parent must be worse-or-equal
            let p = (c - 1) / 2
            if worse(hs[c], hr[c], than: hs[p], hr[p]) {
                swap(&hs[c], &hs[p]); swap(&hr[c], &hr[p]); c = p
            } else { break }
        }
        i += 1
    }
    var threshold = hs[0]
    while i < n {
        let s = scores[i]
        if s > threshold {  // later rows never win ties: strict comparison
            hs[0] = s; hr[0] = base + i
            var c = 0
            while true {
                let l = 2 * c + 1
                if l >= k { break }
                var w = l
                let r = l + 1
                if r < k && worse(hs[r], hr[r], than: hs[l], hr[l]) { w = r }
                if worse(hs[w], hr[w], than: hs[c], hr[c]) {
                    swap(&hs[w], &hs[c]); swap(&hr[w], &hr[c]); c = w
                } else { break }
            }
            threshold = hs[0]
        }
        i += 1
    }
}

@inline(__always)
private func worse(_ s1: Float, _ r1: Int, than s2: Float, _ r2: Int) -> Bool {
    s1 < s2 || (s1 == s2 && r1 > r2)
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

/// Decodes and normalises the current row of a statement (columns: image_id, dtype, vector).
@inline(__always)
private func loadRow(_ s: Statement, _ d: Int, into dst: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) -> Bool {
    let f16: Bool = s.withBlob(1) { $0.count == 3 && $0[1] == 0x31 }  // "f16"
    return s.withBlob(2) { b -> Bool in
        if !f16 {
            guard b.count == d * 4, let src = b.baseAddress else { return false }
            normaliseRaw(src, into: dst, d)
            return true
        }
        guard VectorCodec.decode(b, dtype: .f16, count: d, into: scratch) else { return false }
        normaliseRow(scratch, into: dst, d)
        return true
    }
}

private final class LoadError: @unchecked Sendable {
    var error: Error?
    let lock = NSLock()
    func set(_ e: Error) { lock.lock(); if error == nil { error = e }; lock.unlock() }
}

/// At most this many parts (connections) load an index at once.
let maxIndexLoadParts = 16

extension FeatureStore {
    /// Loads the vectors of one backbone (optionally only images with a sample in `filter.split`
    /// / with `filter.label`) into a `VectorIndex`, rows decoded and normalised straight into one
    /// contiguous matrix, in rowid order. Without a filter, `workers` threads (at most 16) scan
    /// consecutive rowid ranges of the table, each on its own read-only connection but the first;
    /// rows committed by a writer during loading are left out. The rows and their order do not
    /// depend on the number of workers.
    public func loadIndex(backbone: Backbone, filter: VectorFilter = VectorFilter(), workers: Int = defaultWorkerCount) throws -> VectorIndex {
        try loadIndex(backbone: backbone, filter: filter, parallelThreshold: 20_000, workers: workers)
    }

    func loadIndex(backbone: Backbone, filter: VectorFilter, parallelThreshold: Int,
                   workers: Int = defaultWorkerCount) throws -> VectorIndex {
        if filter.split != nil || filter.label != nil { return try loadIndexFiltered(backbone: backbone, filter: filter) }
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
            return VectorIndex(dimension: d, count: 0, imageIDs: [], data: p, mapped: mapped)
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
                parallelFor(parts.count) { part in
                    do {
                        let db: Database
                        if part == 0 { db = main } else {
                            var o = Database.Options()
                            o.readOnly = true
                            db = try Database(path: path, options: o)
                        }
                        let s = try db.prepare("""
                            SELECT image_id, dtype, vector FROM features
                            WHERE backbone_id = ?1 AND transform = ?2 AND view = ?3 AND rowid BETWEEN ?4 AND ?5
                            ORDER BY rowid
                            """)
                        try s.bind(args + [.integer(parts[part].lo), .integer(parts[part].hi)])
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: d)
                        defer { scratch.deallocate(); s.reset() }
                        let offset = parts[part].offset, limit = parts[part].count
                        var n = 0
                        try db.read {
                            while try s.step() {
                                guard n < limit else {
                                    throw StoreError.invalidArgument("the store changed while loading; load again")
                                }
                                let r = offset + n
                                guard loadRow(s, d, into: data + r * d, scratch: scratch) else {
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
        return VectorIndex(dimension: d, count: rows, imageIDs: ids, data: data, mapped: mapped)
    }

    func loadIndexFiltered(backbone: Backbone, filter: VectorFilter) throws -> VectorIndex {
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
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: d)
            defer { scratch.deallocate() }
            do {
                while try s.step() {
                    if n == capacity {
                        capacity *= 2
                        guard let p = realloc(data, capacity * d * 4) else {
                            throw StoreError.invalidArgument("out of memory loading \(capacity) vectors of dimension \(d)")
                        }
                        data = p.assumingMemoryBound(to: Float.self)
                    }
                    guard loadRow(s, d, into: data + n * d, scratch: scratch) else {
                        throw StoreError.invalidVector(context: "image id \(s.int64(0))", reason: "the stored vector has the wrong length; the store was modified outside probe")
                    }
                    ids.append(s.int64(0))
                    n += 1
                }
            } catch {
                free(data)
                throw error
            }
            return VectorIndex(dimension: d, count: n, imageIDs: ids, data: data)
        }
    }
}
