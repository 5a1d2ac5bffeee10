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
    public func search(_ query: [Float], k: Int) throws -> [Neighbor] {
        try search(queries: query, k: k).first ?? []
    }

    /// Top-k for many queries at once (row-major, m x dimension): the scores of blocks of rows
    /// come from one matrix product (sgemm) per block, and each query keeps a min-heap of its k best.
    public func search(queries: [Float], k: Int) throws -> [[Neighbor]] {
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

        let threads = m >= 8 ? 2 : 1
        var r0 = 0
        while r0 < count {
            let nb = min(blockRows, count - r0)
            if m == 1 {
                matVec(data + r0 * d, rows: nb, d, q, scores)
            } else {
                sgemm(transA: false, transB: true, m: m, n: nb, k: d, a: q, lda: d, b: data + r0 * d, ldb: d,
                      c: scores, ldc: nb)
            }
            let base = r0
            let select = { (t: Int) in
                let lo = m * t / threads, hi = m * (t + 1) / threads
                for qi in lo..<hi {
                    selectTopK(scores + qi * nb, nb, base: base, k: k,
                               heapScores + qi * k, heapRows + qi * k, &heapSizes[qi])
                }
            }
            if threads > 1 { parallelFor(threads, select) } else { select(0) }
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
    /// The matrix products of `search(queries:k:)` without the selection (benchmark diagnostics).
    func scoreOnly(queries: [Float]) {
        let d = dimension, m = queries.count / d
        let blockRows = max(1024, min(count, (4 << 20) / max(1, m)))
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: m * blockRows)
        defer { scores.deallocate() }
        queries.withUnsafeBufferPointer { q in
            var r0 = 0
            while r0 < count {
                let nb = min(blockRows, count - r0)
                sgemm(transA: false, transB: true, m: m, n: nb, k: d, a: q.baseAddress!, lda: d, b: data + r0 * d, ldb: d,
                      c: scores, ldc: nb)
                r0 += nb
            }
        }
    }
}

/// y[r] = dot(a[r, :], x) for a block of rows, split across two threads when large.
private func matVec(_ a: UnsafePointer<Float>, rows: Int, _ d: Int, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    let work = { (lo: Int, hi: Int) in
        for r in lo..<hi { y[r] = dot(a + r * d, x, d) }
    }
    if rows >= 4096 {
        parallelFor(2) { t in work(rows * t / 2, rows * (t + 1) / 2) }
    } else {
        work(0, rows)
    }
}

private struct UncheckedBox<T>: @unchecked Sendable { let value: T }

/// Runs body(0..<iterations) on Dispatch's worker threads; the caller keeps the iterations disjoint.
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

extension FeatureStore {
    /// Loads the vectors of one backbone (optionally only images with a sample in `filter.split`
    /// / with `filter.label`) into a `VectorIndex`, rows decoded and normalised straight into one
    /// contiguous matrix. Without a filter, two threads scan the two halves of the table (the
    /// second on its own read-only connection); rows committed by a writer during loading are
    /// left out.
    public func loadIndex(backbone: Backbone, filter: VectorFilter = VectorFilter()) throws -> VectorIndex {
        try loadIndex(backbone: backbone, filter: filter, parallelThreshold: 20_000)
    }

    func loadIndex(backbone: Backbone, filter: VectorFilter, parallelThreshold: Int) throws -> VectorIndex {
        if filter.split != nil || filter.label != nil { return try loadIndexFiltered(backbone: backbone, filter: filter) }
        let d = backbone.dimension
        let args: [SQLValue] = [.integer(backbone.id), .text(filter.transform), .int(filter.view)]
        // One snapshot for the row count and the rowid range.
        let (total, lo, hi) = try database.read { () -> (Int, Int64, Int64) in
            let n = try database.scalarInt("SELECT count(*) FROM features WHERE backbone_id = ?1 AND transform = ?2 AND view = ?3", args) ?? 0
            let range = try database.queryFirst("SELECT min(rowid), max(rowid) FROM features") { ($0.int64(0), $0.int64(1)) } ?? (0, 0)
            return (Int(n), range.0, range.1)
        }
        guard total > 0 else {
            guard let (p, mapped) = allocateMatrix(d) else { throw StoreError.invalidArgument("out of memory") }
            return VectorIndex(dimension: d, count: 0, imageIDs: [], data: p, mapped: mapped)
        }
        guard let (data, mapped) = allocateMatrix(total * d) else {
            throw StoreError.invalidArgument("out of memory: \(total) vectors of dimension \(d) need \(formatBytes(Int64(total * d * 4)))")
        }
        var ids = [Int64](repeating: 0, count: total)
        // Part 0: rowids lo...mid ascending, written from row 0 up (this connection).
        // Part 1: rowids mid+1...hi descending, written from row total-1 down (a second connection).
        // Rows present now with rowid <= hi are all that either part can see (new rows get higher
        // rowids; updates keep theirs), so the two parts never meet.
        let mid = lo + (hi - lo) / 2
        var counts = [0, 0]
        let failure = LoadError()
        let twoThreads = total >= parallelThreshold
        let parts = twoThreads ? [(lo, mid), (mid + 1, hi)] : [(lo, hi)]
        let path = self.path
        let main = database
        ids.withUnsafeMutableBufferPointer { idp in
            counts.withUnsafeMutableBufferPointer { cp in
                parallelFor(parts.count) { part in
                    do {
                        let db: Database
                        if part == 0 { db = main } else {
                            var o = Database.Options()
                            o.readOnly = true
                            db = try Database(path: path, options: o)
                        }
                        let descending = part == 1
                        let s = try db.prepare("""
                            SELECT image_id, dtype, vector FROM features
                            WHERE backbone_id = ?1 AND transform = ?2 AND view = ?3 AND rowid BETWEEN ?4 AND ?5
                            ORDER BY rowid \(descending ? "DESC" : "ASC")
                            """)
                        try s.bind(args + [.integer(parts[part].0), .integer(parts[part].1)])
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: d)
                        defer { scratch.deallocate(); s.reset() }
                        var n = 0
                        try db.read {
                            while try s.step() {
                                guard n < total else {
                                    throw StoreError.invalidArgument("the store changed while loading; load again")
                                }
                                let r = descending ? total - 1 - n : n
                                guard loadRow(s, d, into: data + r * d, scratch: scratch) else {
                                    throw StoreError.invalidVector(context: "image id \(s.int64(0))",
                                                                   reason: "the stored vector has the wrong length; the store was modified outside probe")
                                }
                                idp[r] = s.int64(0)
                                n += 1
                            }
                        }
                        cp[part] = n
                    } catch { failure.set(error) }
                }
            }
        }
        if let e = failure.error { releaseMatrix(data, mapped: mapped); throw e }
        let n0 = counts[0], n1 = twoThreads ? counts[1] : 0
        guard n0 + n1 <= total else { releaseMatrix(data, mapped: mapped); throw StoreError.invalidArgument("the store changed while loading; load again") }
        if n0 + n1 < total {  // rows deleted meanwhile: close the gap
            memmove(data + n0 * d, data + (total - n1) * d, n1 * d * 4)
            for i in 0..<n1 { ids[n0 + i] = ids[total - n1 + i] }
            ids.removeLast(total - n0 - n1)
        }
        return VectorIndex(dimension: d, count: n0 + n1, imageIDs: ids, data: data, mapped: mapped)
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
