import Foundation
import NN
import Parallelism

/// A k-NN classifier over labelled vectors, DINOv2's protocol (dinov2/eval/knn.py): cosine
/// similarity of L2-normalised vectors, the k most similar training rows vote for their class with
/// weight exp(similarity / T) (T = 0.07), and the class of the largest total wins (the lower class
/// index on ties). The similarities come from `VectorIndex.search(queries:k:)`: blocked matrix
/// products and a bounded heap per query (a partial top-k, never a full sort nor a queries x rows
/// matrix in memory).
public struct KNNClassifier: Sendable {
    public let index: VectorIndex
    /// The class of every row of the index.
    public let labels: [Int]
    public let classes: Int

    public init(index: VectorIndex, labels: [Int], classes: Int) throws {
        guard labels.count == index.count else {
            throw NeighborsError.dimensionMismatch(expected: index.count, got: labels.count, context: "k-NN labels (one per indexed row)")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classes }) {
            throw NeighborsError.invalidVector(context: "k-NN label of row \(bad)", reason: "\(labels[bad]) is outside 0..<\(classes)")
        }
        self.index = index; self.labels = labels; self.classes = classes
    }

    /// Builds the index from row-major vectors (count x dimension; normalised copies).
    public init(vectors: [Float], dimension: Int, labels: [Int], classes: Int) throws {
        let index = try VectorIndex(vectors: vectors, dimension: dimension, imageIDs: (0..<Int64(labels.count)).map { $0 })
        try self.init(index: index, labels: labels, classes: classes)
    }

    /// Predicted classes of every query (row-major, m x dimension) for each k of `ks` (each capped
    /// at the number of rows): result[i][q] is query q's class with ks[i] neighbours.
    public func classify(queries: [Float], ks: [Int], temperature: Double = 0.07,
                         workers: Int = defaultWorkerCount) throws -> [[Int]] {
        guard temperature > 0, temperature.isFinite else {
            throw NeighborsError.invalidVector(context: "k-NN temperature", reason: "it must be positive, got \(temperature)")
        }
        let caps = ks.map { min(max($0, 1), index.count) }
        let kmax = caps.max() ?? 0
        guard kmax > 0 else { return ks.map { _ in [] } }
        let neighbours = try index.search(queries: queries, k: kmax, workers: workers)
        let m = neighbours.count
        let c = classes
        // Votes of the k-th neighbour are added to those of the first k - 1: one pass per query for all ks.
        var order = Array(caps.indices)
        order.sort { caps[$0] < caps[$1] }
        var columns = [UnsafeMutablePointer<Int>]()
        for i in ks.indices { columns.append(.allocate(capacity: max(1, m))) }
        defer { for p in columns { p.deallocate() } }
        let cols = UncheckedSendable(columns)
        parallelSlices(m, workers: m >= 64 ? max(1, workers) : 1) { _, slice in
            var votes = [Double](repeating: 0, count: c)
            for q in slice {
                for j in 0..<c { votes[j] = 0 }
                let nb = neighbours[q]
                var used = 0
                for i in order {
                    let k = min(caps[i], nb.count)
                    while used < k {
                        let n = nb[used]
                        votes[labels[n.row]] += exp(Double(n.score) / temperature)
                        used += 1
                    }
                    var best = 0
                    for j in 1..<max(c, 1) where votes[j] > votes[best] { best = j }
                    cols.value[i][q] = best
                }
            }
        }
        return columns.map { Array(UnsafeBufferPointer(start: $0, count: m)) }
    }
}
