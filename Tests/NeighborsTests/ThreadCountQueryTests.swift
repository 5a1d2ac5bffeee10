import Foundation
import Testing
import NN
import Reproducible
import Neighbors
@testable import Store
import Parallelism
import TestSupport

/// The index (rows, order, values) and the neighbours (rows, order, scores, ties) are the same for
/// any worker count: loading in 1 to 7 parts, the one-query dot products, the batched matrix
/// products and the selections split between 1, 2, 3 or 7 workers (BLAS's thread count set alike).
@Test func queryResultsDoNotDependOnThreadCount() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("threads.sqlite"))
    let d = 40
    let b = try store.backbone(architecture: "test", weightsSHA256: sha("w"), dimension: d)
    let other = try store.backbone(architecture: "other", weightsSHA256: sha("o"), dimension: 3)
    var rng = SplitMix64(seed: 11)
    let distinct = (0..<300).map { _ in (0..<d).map { _ in rng.nextFloat() * 2 - 1 } }
    let n = 5000
    var twinsOf: [Int: [Int]] = [:]  // distinct vector -> its rows, ascending
    for chunk in 0..<10 {
        var batch = Batch(), noise = Batch()
        for i in chunk * n / 10..<(chunk + 1) * n / 10 {
            let h = sha("t\(i)")
            let j = (i * 7) % distinct.count  // every vector 16 or 17 times: exact ties
            twinsOf[j, default: []].append(i)
            batch.images.append(ImageRecord(sha256: h, byteSize: 10))
            batch.features.append(FeatureRecord(sha256: h, transform: "val", view: 0, vector: distinct[j]))
            // rows of another backbone between them: the load's parts hold unequal counts
            if i % 3 == 0 {
                noise.images.append(ImageRecord(sha256: h, byteSize: 10))
                noise.features.append(FeatureRecord(sha256: h, transform: "val", view: 0, vector: [1, Float(i), 2]))
            }
        }
        try store.insertBatch(batch, backbone: b)
        try store.insertBatch(noise, backbone: other)
    }
    // 4100 queries (several blocks of rows): stored vectors (ties at the top) and random ones.
    let m = 4100
    var queries: [Float] = []
    for qi in 0..<m {
        queries += qi % 2 == 0 ? distinct[qi % distinct.count] : (0..<d).map { _ in rng.nextFloat() * 2 - 1 }
    }
    let singles = [0, 1, 2, 3, 10, 11]
    let k = 25
    let saved = ThreadCount.workers
    defer { ThreadCount.set(saved) }
    var reference: (ids: [Int64], rows: [[Float]], many: [[Neighbor]], one: [[Neighbor]])?
    for threads in [1, 2, 3, 7] {
        ThreadCount.set(threads)
        let index = try store.loadIndex(backbone: b, filter: VectorFilter(), parallelThreshold: 1)
        #expect(index.count == n)
        let rows = (0..<n).map { index.row($0) }
        let many = try index.search(queries: queries, k: k)
        let one = try singles.map { try index.search(Array(queries[$0 * d..<($0 + 1) * d]), k: k) }
        #expect(many.count == m && many.allSatisfy { $0.count == k })
        if let r = reference {
            #expect(index.imageIDs == r.ids, "\(threads) threads: rows in another order")
            #expect(rows == r.rows, "\(threads) threads: other row values")
            #expect(many == r.many, "\(threads) threads: other neighbours of the batched queries")
            #expect(one == r.one, "\(threads) threads: other neighbours of single queries")
        } else {
            reference = (index.imageIDs, rows, many, one)
        }
        // A stored vector's twins come first: exact ties (one query: the same dot product for
        // every twin), in row order.
        for (s, qi) in singles.enumerated() where qi % 2 == 0 {
            let twins = twinsOf[qi % distinct.count]!
            #expect(one[s].prefix(twins.count).map(\.row) == twins)
            #expect(Set(many[qi].prefix(twins.count).map(\.row)) == Set(twins))
        }
    }
    // The explicit `workers:` argument gives the same answers as the default.
    let index = try store.loadIndex(backbone: b, filter: VectorFilter(), parallelThreshold: 1, workers: 5)
    #expect(try index.search(queries: queries, k: k, workers: 5) == reference?.many)
}
