import Foundation
import NN
import Store
import Parallelism

/// One neighbour of a query: the row of the index, its image, and the cosine similarity.
public struct Neighbor: Sendable, Equatable, Codable {
    public let row: Int
    public let imageID: Int64
    public let score: Float
}

/// Why a search could not run.
public enum NeighborsError: Error, CustomStringConvertible, Equatable {
    case dimensionMismatch(expected: Int, got: Int, context: String)
    case invalidVector(context: String, reason: String)

    public var description: String {
        switch self {
        case .dimensionMismatch(let e, let g, let c):
            return "\(c): expected \(e) values, got \(g); query with vectors of the index's backbone"
        case .invalidVector(let c, let r):
            return "\(c): \(r); NaN and infinity cannot be searched"
        }
    }
}

/// All vectors of one backbone, L2-normalised, in one contiguous row-major float32 matrix, for
/// exact cosine nearest-neighbour search by matrix products. Immutable after building.
public final class VectorIndex: @unchecked Sendable {
    public let dimension: Int
    public let count: Int
    /// The image id of every row.
    public let imageIDs: [Int64]
    /// The rows (normalised in place), owned here.
    let matrix: VectorMatrix
    /// count x dimension, rows of unit length (zero vectors stay zero).
    var data: UnsafeMutablePointer<Float> { matrix.data }

    /// An index over `matrix` (as `FeatureStore.loadVectors` returns it): its rows are scaled to
    /// unit length in place, split between `workers`, and the index keeps the matrix.
    public init(matrix: VectorMatrix, workers: Int = defaultWorkerCount) {
        self.matrix = matrix
        dimension = matrix.dimension; count = matrix.count; imageIDs = matrix.imageIDs
        let p = matrix.data, d = matrix.dimension
        parallelSlices(matrix.count, workers: matrix.count >= 4096 ? max(1, workers) : 1) { _, rows in
            for r in rows { normaliseRow(p + r * d, into: p + r * d, d) }
        }
    }

    /// Builds an index from row-major vectors (normalising a copy).
    public convenience init(vectors: [Float], dimension: Int, imageIDs: [Int64]) throws {
        try self.init(matrix: VectorMatrix(vectors: vectors, dimension: dimension, imageIDs: imageIDs))
    }

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
            throw NeighborsError.dimensionMismatch(expected: d, got: queries.count, context: "query vectors (a multiple of the dimension)")
        }
        for (i, x) in queries.enumerated() where !x.isFinite {
            throw NeighborsError.invalidVector(context: "query", reason: "value \(i) is \(x)")
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

/// Copies a row scaled to unit L2 norm (a zero row stays zero).
@inline(__always)
func normaliseRow(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, _ d: Int) {
    let n2 = dot(src, src, d)
    let scale: Float = n2 > 0 ? 1 / n2.squareRoot() : 0
    for i in 0..<d { dst[i] = src[i] * scale }
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


extension FeatureStore {
    /// The vectors of one backbone (optionally only images with a sample in `filter.split` / with
    /// `filter.label`) as a search index: `loadVectors`, then rows scaled to unit length. The rows
    /// and their order do not depend on `workers`.
    public func loadIndex(backbone: StoredBackbone, filter: VectorFilter = VectorFilter(), workers: Int = defaultWorkerCount) throws -> VectorIndex {
        VectorIndex(matrix: try loadVectors(backbone: backbone, filter: filter, workers: workers), workers: workers)
    }
}
