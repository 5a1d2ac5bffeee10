import Foundation
import Testing
import Reproducible
import Neighbors

/// DINOv2's weighted k-NN vote, by brute force in float64: all similarities, a full sort, then
/// sum exp(similarity / T) per class over the k best (the lower class on ties).
func bruteForceKNN(train: [Float], labels: [Int], classes: Int, dimension d: Int, query: [Float], k: Int, temperature: Double) -> Int {
    func unit(_ v: ArraySlice<Float>) -> [Double] {
        let n = sqrt(v.reduce(0.0) { $0 + Double($1) * Double($1) })
        return v.map { n > 0 ? Double($0) / n : 0 }
    }
    let q = unit(query[...])
    var sims: [(row: Int, s: Double)] = []
    for r in 0..<labels.count {
        let t = unit(train[(r * d)..<((r + 1) * d)])
        sims.append((r, zip(q, t).reduce(0.0) { $0 + $1.0 * $1.1 }))
    }
    sims.sort { $0.s > $1.s || ($0.s == $1.s && $0.row < $1.row) }
    var votes = [Double](repeating: 0, count: classes)
    for (r, s) in sims.prefix(min(k, sims.count)) { votes[labels[r]] += exp(s / temperature) }
    var best = 0
    for j in 1..<classes where votes[j] > votes[best] { best = j }
    return best
}

@Test func knnVotesMatchABruteForceReference() throws {
    let n = 700, d = 16, classes = 5, m = 120
    var rng = SplitMix64(seed: 21)
    // Class clusters with much overlap, so that k changes the answers.
    let centres = (0..<(classes * d)).map { _ in rng.nextFloat() - 0.5 }
    var train = [Float](), labels = [Int](), queries = [Float](), truth = [Int]()
    for r in 0..<(n + m) {
        let k = Int(rng.next(below: classes))
        let v = (0..<d).map { centres[k * d + $0] + 1.5 * (rng.nextFloat() - 0.5) }
        if r < n { train += v; labels.append(k) } else { queries += v; truth.append(k) }
    }
    let knn = try KNNClassifier(vectors: train, dimension: d, labels: labels, classes: classes)
    let ks = [1, 10, 20, 100, 200, 5000]   // 5000 is capped at the 700 rows
    for workers in [1, 3] {
        let got = try knn.classify(queries: queries, ks: ks, temperature: 0.07, workers: workers)
        for (i, k) in ks.enumerated() {
            var agree = 0
            for q in 0..<m {
                let ref = bruteForceKNN(train: train, labels: labels, classes: classes, dimension: d,
                                        query: Array(queries[(q * d)..<((q + 1) * d)]), k: k, temperature: 0.07)
                if ref == got[i][q] { agree += 1 }
            }
            #expect(agree == m, "k=\(k) workers=\(workers): \(agree) of \(m) agree")
        }
    }
    // The votes do depend on k here (else the test would not tell a wrong k from a right one).
    let byK = try knn.classify(queries: queries, ks: [1, 200])
    #expect(byK[0] != byK[1])
    #expect(throws: (any Error).self) { try KNNClassifier(vectors: train, dimension: d, labels: Array(labels.dropLast()), classes: classes) }
    #expect(throws: (any Error).self) { try KNNClassifier(vectors: train, dimension: d, labels: labels.map { $0 + 1 }, classes: classes) }
}
