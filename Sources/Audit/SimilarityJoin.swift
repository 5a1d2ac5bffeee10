import Foundation
import NN
import Parallelism

/// Two rows whose cosine similarity reached the threshold of a `SimilarityJoin` (first < second).
public struct SimilarPair: Sendable, Equatable {
    public var first: Int
    public var second: Int
    public var similarity: Float
    public init(first: Int, second: Int, similarity: Float) {
        self.first = first; self.second = second; self.similarity = similarity
    }
}

/// What `SimilarityJoin.run` finds over one set of L2-normalised rows.
public struct SimilarityJoinResult: Sendable {
    /// k nearest other rows of every row (row-major, count x k), best first; ties to the lower row.
    /// Rows with fewer than k others have -1 (and similarity -infinity) in the missing places.
    public var neighbours: [Int32]
    public var similarities: [Float]
    public var k: Int
    /// Every pair with similarity >= the threshold, most similar first (ties: lower first row, then
    /// lower second row); at most `maxPairs` (the most similar ones) when `truncated`.
    public var pairs: [SimilarPair]
    public var truncated: Bool
}

/// Exact all-pairs cosine similarity over n L2-normalised rows without an n x n matrix: the rows are
/// cut into blocks of `blockRows`; each pair of blocks (I <= J) is one matrix product (sgemm) into a
/// blockRows x blockRows score tile, which is scanned once for (a) pairs at or above the threshold and
/// (b) the k best neighbours of both the tile's rows and its columns. Each pair's score is computed
/// once (in tile (I, J) with I <= J), and the tiles' shapes depend on n only, so every score, and so
/// every result, is the same for any worker count. Workers take tiles in turn; each keeps its own
/// top-k heaps and pair list, merged at the end (top-k of a union = top-k of the parts' top-k).
/// Memory: one tile per worker (4 MB) plus workers x n x k heap entries.
public enum SimilarityJoin {
    /// Rows per block: a tile is 1024 x 1024 scores (4 MB), a matrix product of 1024 x 1024 x d.
    public static let blockRows = 1024

    /// `data`: count x dimension, rows of unit length (or zero). `k`: neighbours per row (0 for
    /// none). `threshold`: pairs with similarity >= threshold are returned (use `.infinity` for
    /// none). `maxPairs`: at most this many (the most similar) pairs are kept.
    public static func run(_ data: UnsafePointer<Float>, count n: Int, dimension d: Int, k requestedK: Int,
                           threshold: Float, maxPairs: Int = 1_000_000, workers: Int = defaultWorkerCount) -> SimilarityJoinResult {
        let k = max(0, min(requestedK, n - 1))
        guard n > 0 else { return SimilarityJoinResult(neighbours: [], similarities: [], k: k, pairs: [], truncated: false) }
        let b = blockRows
        let blocks = (n + b - 1) / b
        var tiles: [(Int, Int)] = []
        tiles.reserveCapacity(blocks * (blocks + 1) / 2)
        for i in 0..<blocks { for j in i..<blocks { tiles.append((i, j)) } }
        let w = max(1, min(workers, tiles.count))
        let parts = (0..<w).map { _ in JoinPart(count: n, k: k, tile: min(b, n) * min(b, n)) }
        let next = TileCounter()
        let savedBLASThreads = blasThreads()
        setBLASThreads(1)   // one thread per product: the workers are the parallelism, and bits stay put
        defer { setBLASThreads(savedBLASThreads) }
        let boxedParts = UncheckedSendable(parts)
        parallelSlices(w, workers: w) { worker, _ in
            let part = boxedParts.value[worker]
            while true {
                let t = next.take()
                if t >= tiles.count { break }
                let (bi, bj) = tiles[t]
                let r0 = bi * b, c0 = bj * b
                let rows = min(b, n - r0), cols = min(b, n - c0)
                sgemm(transA: false, transB: true, m: rows, n: cols, k: d, a: data + r0 * d, lda: d,
                      b: data + c0 * d, ldb: d, c: part.tile, ldc: cols)
                part.scan(rows: r0, rowCount: rows, cols: c0, colCount: cols, diagonal: bi == bj,
                          threshold: threshold, maxPairs: maxPairs)
            }
        }
        // Merge: every row's candidates from all parts, sorted (score desc, row asc), first k.
        var neighbours = [Int32](repeating: -1, count: n * k)
        var similarities = [Float](repeating: -.infinity, count: n * k)
        if k > 0 {
            var cand: [(Float, Int32)] = []
            cand.reserveCapacity(w * k)
            for r in 0..<n {
                cand.removeAll(keepingCapacity: true)
                for p in parts {
                    for e in 0..<p.sizes[r] { cand.append((p.heapScores[r * k + e], p.heapRows[r * k + e])) }
                }
                cand.sort { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
                for (e, c) in cand.prefix(k).enumerated() {
                    similarities[r * k + e] = c.0; neighbours[r * k + e] = c.1
                }
            }
        }
        var pairs = parts.flatMap(\.pairs)
        let truncated = parts.contains { $0.truncated } || pairs.count > maxPairs
        pairs.sort(by: pairOrder)
        if pairs.count > maxPairs { pairs.removeLast(pairs.count - maxPairs) }
        return SimilarityJoinResult(neighbours: neighbours, similarities: similarities, k: k, pairs: pairs, truncated: truncated)
    }
}

@inline(__always)
func pairOrder(_ a: SimilarPair, _ b: SimilarPair) -> Bool {
    if a.similarity != b.similarity { return a.similarity > b.similarity }
    if a.first != b.first { return a.first < b.first }
    return a.second < b.second
}

/// Hands out tile numbers in turn.
private final class TileCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func take() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
}

/// One worker's state: a score tile, top-k min-heaps of every row (root = worst kept), pairs found.
private final class JoinPart {
    let k: Int
    let tile: UnsafeMutablePointer<Float>
    var heapScores: UnsafeMutablePointer<Float>
    var heapRows: UnsafeMutablePointer<Int32>
    var sizes: UnsafeMutablePointer<Int>
    /// The root score of each row's heap when full, -infinity before: the bar a new score must pass.
    var bar: UnsafeMutablePointer<Float>
    var pairs: [SimilarPair] = []
    var truncated = false

    init(count n: Int, k: Int, tile: Int) {
        self.k = k
        self.tile = .allocate(capacity: max(1, tile))
        heapScores = .allocate(capacity: max(1, n * k))
        heapRows = .allocate(capacity: max(1, n * k))
        sizes = .allocate(capacity: n)
        sizes.initialize(repeating: 0, count: n)
        bar = .allocate(capacity: n)
        bar.initialize(repeating: k > 0 ? -.infinity : .infinity, count: n)
    }

    deinit {
        tile.deallocate(); heapScores.deallocate(); heapRows.deallocate(); sizes.deallocate(); bar.deallocate()
    }

    /// Scans a tile of scores (rowCount x colCount, rows r0..., columns c0...). On the diagonal only
    /// column > row counts.
    func scan(rows r0: Int, rowCount: Int, cols c0: Int, colCount: Int, diagonal: Bool, threshold: Float, maxPairs: Int) {
        let bar = self.bar
        for i in 0..<rowCount {
            let row = tile + i * colCount
            let ri = r0 + i
            let start = diagonal ? i + 1 : 0
            var barI = bar[ri]
            /// One score: offered to both rows' heaps and kept as a pair when it reaches their bars / the threshold.
            @inline(__always) func visit(_ j: Int) {
                let s = row[j]
                let cj = c0 + j
                if s >= barI || s >= threshold || s >= bar[cj] {
                    // >=: a tie with the worst kept may still win on the lower row (decided in offer).
                    if s >= barI { offer(ri, cj, s); barI = bar[ri] }
                    if s >= bar[cj] { offer(cj, ri, s) }
                    if s >= threshold { addPair(SimilarPair(first: ri, second: cj, similarity: s), maxPairs: maxPairs) }
                }
            }
            var j = start
            // 16 scores at a time: most reach neither bar nor the threshold. Bars only rise, so a
            // chunk passed over with the bars of its start holds nothing for the bars of now either.
            while j + 16 <= colCount {
                let s = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
                let columnBars = UnsafeRawPointer(bar + c0 + j).loadUnaligned(as: SIMD16<Float>.self)
                let low = SIMD16<Float>(repeating: min(barI, threshold))
                if any((s .>= columnBars) .| (s .>= low)) {
                    for t in j..<(j + 16) { visit(t) }
                }
                j += 16
            }
            while j < colCount { visit(j); j += 1 }
        }
    }

    func addPair(_ p: SimilarPair, maxPairs: Int) {
        pairs.append(p)
        if pairs.count >= 2 * max(1, maxPairs) {
            pairs.sort(by: pairOrder)
            pairs.removeLast(pairs.count - maxPairs)
            truncated = true
        }
    }

    /// Offers neighbour `other` with score `s` to row `r`'s heap (s reaches the bar).
    @inline(__always)
    func offer(_ r: Int, _ other: Int, _ s: Float) {
        let k = self.k
        let hs = heapScores + r * k, hr = heapRows + r * k
        let o = Int32(other)
        if sizes[r] < k {
            var c = sizes[r]
            hs[c] = s; hr[c] = o
            sizes[r] += 1
            while c > 0 {
                let p = (c - 1) / 2
                if worse(hs[c], hr[c], than: hs[p], hr[p]) {
                    swap(&hs[c], &hs[p]); swap(&hr[c], &hr[p]); c = p
                } else { break }
            }
            if sizes[r] == k { bar[r] = hs[0] }
            return
        }
        // Full: replace the root when strictly better (ties keep the lower row: rows come in any
        // order here, so compare rows too).
        guard worse(hs[0], hr[0], than: s, o) else { return }
        hs[0] = s; hr[0] = o
        var c = 0
        while true {
            let l = 2 * c + 1
            if l >= k { break }
            var m = l
            let rr = l + 1
            if rr < k && worse(hs[rr], hr[rr], than: hs[l], hr[l]) { m = rr }
            if worse(hs[m], hr[m], than: hs[c], hr[c]) {
                swap(&hs[m], &hs[c]); swap(&hr[m], &hr[c]); c = m
            } else { break }
        }
        bar[r] = hs[0]
    }
}

@inline(__always)
private func worse(_ s1: Float, _ r1: Int32, than s2: Float, _ r2: Int32) -> Bool {
    s1 < s2 || (s1 == s2 && r1 > r2)
}

/// Copies `count` rows of `dimension` values scaled to unit L2 norm (a zero row stays zero).
public func normalizedRows(_ values: [Float], count: Int, dimension d: Int) -> [Float] {
    var out = [Float](repeating: 0, count: count * d)
    values.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            for r in 0..<count {
                let s = src.baseAddress! + r * d, t = dst.baseAddress! + r * d
                let n2 = dot(s, s, d)
                let scale: Float = n2 > 0 ? 1 / n2.squareRoot() : 0
                for i in 0..<d { t[i] = s[i] * scale }
            }
        }
    }
    return out
}
