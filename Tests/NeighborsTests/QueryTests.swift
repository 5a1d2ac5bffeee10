import Foundation
import Testing
import Reproducible
import Neighbors
@testable import Store
import TestSupport

/// Brute force in double precision, for checking the index.
func bruteForceTopK(_ vectors: [Float], dimension d: Int, query: [Float], k: Int) -> [(row: Int, score: Double)] {
    let n = vectors.count / d
    let qn = sqrt(query.reduce(0.0) { $0 + Double($1) * Double($1) })
    var all: [(Int, Double)] = []
    for r in 0..<n {
        var dot = 0.0, nn = 0.0
        for j in 0..<d {
            let x = Double(vectors[r * d + j])
            dot += x * Double(query[j]); nn += x * x
        }
        all.append((r, nn > 0 && qn > 0 ? dot / (sqrt(nn) * qn) : 0))
    }
    all.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
    return Array(all.prefix(k)).map { (row: $0.0, score: $0.1) }
}

@Test func queryMatchesBruteForce() throws {
    let dir = try TempDir()
    let store = try FeatureStore(path: dir.file("q.sqlite"))
    let d = 37  // not a multiple of the SIMD width
    let b = try store.backbone(architecture: "test", weightsSHA256: sha("w"), dimension: d)
    var rng = SplitMix64(seed: 3)
    var batch = Batch()
    var vectors: [Float] = []
    let n = 3000
    for i in 0..<n {
        let h = sha("img\(i)")
        var v = (0..<d).map { _ in rng.nextFloat() * 2 - 1 }
        if i == 17 { v = [Float](repeating: 0, count: d) }  // a zero vector scores 0
        vectors += v
        batch.images.append(ImageRecord(sha256: h, byteSize: 10))
        batch.samples.append(SampleRecord(path: "p\(i)", sha256: h, label: i % 3 == 0 ? "a" : "b", split: i % 4 == 0 ? "val" : "train"))
        batch.features.append(FeatureRecord(sha256: h, transform: "val", view: 0, vector: v))
    }
    try store.insertBatch(batch, backbone: b)
    let index = try store.loadIndex(backbone: b)
    #expect(index.count == n)
    // The two-thread loader (forced here) gives the same matrix as the one-thread one.
    let two = try store.loadIndex(backbone: b, filter: VectorFilter(), parallelThreshold: 1)
    let one = try store.loadIndex(backbone: b, filter: VectorFilter(), parallelThreshold: .max)
    #expect(two.imageIDs == one.imageIDs && two.imageIDs == index.imageIDs)
    #expect((0..<n).allSatisfy { two.row($0) == one.row($0) })
    #expect(Set(index.imageIDs).count == n)
    // Rows follow insertion order here; map rows to image ids through the index.
    let ids = try store.database.query("SELECT i.id, i.sha256 FROM images i") { ($0.int64(0), $0.string(1)!) }
    let idOfSha = Dictionary(uniqueKeysWithValues: ids.map { ($0.1, $0.0) })
    let k = 10
    var queries: [Float] = []
    for qi in 0..<25 { queries += (0..<d).map { _ in rng.nextFloat() * 2 - 1 }; _ = qi }
    let many = try index.search(queries: queries, k: k)
    for qi in 0..<25 {
        let q = Array(queries[qi * d..<(qi + 1) * d])
        let expected = bruteForceTopK(vectors, dimension: d, query: q, k: k)
        let one = try index.search(q, k: k)
        #expect(one.map(\.imageID) == expected.map { idOfSha[sha("img\($0.row)")]! })
        #expect(many[qi].map(\.imageID) == one.map(\.imageID))
        for (got, want) in zip(one, expected) { #expect(abs(Double(got.score) - want.score) < 1e-5) }
    }
    // A filtered index holds only images with a sample in the split.
    let val = try store.loadIndex(backbone: b, filter: VectorFilter(split: "val"))
    #expect(val.count == n / 4)
    let valA = try store.loadIndex(backbone: b, filter: VectorFilter(split: "val", label: "a"))
    #expect(valA.count == (0..<n).filter { $0 % 4 == 0 && $0 % 3 == 0 }.count)
    // k larger than the index, and a wrong query dimension.
    #expect(try valA.search(Array(queries[0..<d]), k: 100_000).count == valA.count)
    #expect(throws: NeighborsError.dimensionMismatch(expected: d, got: 3, context: "query vectors (a multiple of the dimension)")) {
        try index.search([1, 2, 3], k: 3)
    }
}
