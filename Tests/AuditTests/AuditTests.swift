import Foundation
import Testing
import Audit
import Heads
import Reproducible

// MARK: helpers

/// A unit vector in the plane of axes a and b of a d-dimensional space, at `angle` radians from axis a.
func planeVector(_ d: Int, _ a: Int, _ b: Int, angle: Double) -> [Float] {
    var v = [Float](repeating: 0, count: d)
    v[a] = Float(cos(angle)); v[b] = Float(sin(angle))
    return v
}

func randomVectors(_ n: Int, _ d: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<(n * d)).map { _ in rng.nextFloat() - 0.5 }
}

func sample(_ name: String, _ label: String, _ split: String?, sha: String? = nil) -> AuditSample {
    AuditSample(path: "/data/\(split ?? "all")/\(label)/\(name).jpg", sha256: sha ?? name, label: label, split: split)
}

/// Cosine similarity in double precision.
func cosine(_ v: [Float], _ i: Int, _ j: Int, _ d: Int) -> Double {
    var dot = 0.0, a = 0.0, b = 0.0
    for t in 0..<d {
        let x = Double(v[i * d + t]), y = Double(v[j * d + t])
        dot += x * y; a += x * x; b += y * y
    }
    return dot / (a.squareRoot() * b.squareRoot())
}

// MARK: similarity join

@Test func similarityJoinMatchesBruteForceForAnyWorkerCount() throws {
    // 2,300 rows: three blocks of 1024, the last one ragged, so diagonal, off-diagonal and edge tiles all count.
    let n = 2300, d = 19
    var v = randomVectors(n, d, seed: 11)
    // Plant near copies far apart in the row order (different blocks): row 2200 + i copies row i * 37.
    var rng = SplitMix64(seed: 5)
    for i in 0..<60 {
        for t in 0..<d { v[(2200 + i) * d + t] = v[(i * 37) * d + t] + 0.08 * (rng.nextFloat() - 0.5) }
    }
    let threshold: Float = 0.97, k = 5
    let unit = normalizedRows(v, count: n, dimension: d)
    let runs = [1, 2, 3].map { w in
        unit.withUnsafeBufferPointer { SimilarityJoin.run($0.baseAddress!, count: n, dimension: d, k: k, threshold: threshold, workers: w) }
    }
    // Brute force in double precision.
    var expectedPairs = Set<[Int]>()
    var borderline = Set<[Int]>()
    var knn: [[(Int, Double)]] = Array(repeating: [], count: n)
    for i in 0..<n {
        for j in 0..<n where j != i {
            let s = cosine(v, i, j, d)
            knn[i].append((j, s))
            if j > i && abs(s - Double(threshold)) < 1e-5 { borderline.insert([i, j]) }
            else if j > i && s >= Double(threshold) { expectedPairs.insert([i, j]) }
        }
        knn[i].sort { $0.1 > $1.1 }
    }
    #expect(expectedPairs.count >= 60)   // the planted copies (and any random pair that close)
    let found = Set(runs[0].pairs.map { [$0.first, $0.second] }).subtracting(borderline)
    #expect(found == expectedPairs)
    for p in runs[0].pairs { #expect(abs(Double(p.similarity) - cosine(v, p.first, p.second, d)) < 1e-5) }
    // Most similar first.
    #expect(zip(runs[0].pairs, runs[0].pairs.dropFirst()).allSatisfy { $0.similarity >= $1.similarity })
    // Neighbours: the same similarities as brute force, rank by rank.
    var mismatches = 0
    for i in 0..<n {
        for e in 0..<k where abs(Double(runs[0].similarities[i * k + e]) - knn[i][e].1) > 1e-5 { mismatches += 1 }
        #expect(runs[0].neighbours[i * k] != Int32(i))
    }
    #expect(mismatches == 0)
    // The same bits for 1, 2 and 3 workers.
    for r in runs.dropFirst() {
        #expect(r.pairs == runs[0].pairs)
        #expect(r.neighbours == runs[0].neighbours)
        #expect(r.similarities.map(\.bitPattern) == runs[0].similarities.map(\.bitPattern))
    }
}

@Test func similarityJoinKeepsTheMostSimilarPairsWhenTruncated() {
    // 40 rows on 4 directions (10 identical rows each): 4 x 45 pairs of similarity 1, others 0.
    let d = 4, n = 40
    var v = [Float](repeating: 0, count: n * d)
    for r in 0..<n { v[r * d + r % 4] = 1; if r % 4 == 0 { v[r * d + 1] = 0.1 } }
    let unit = normalizedRows(v, count: n, dimension: d)
    let full = unit.withUnsafeBufferPointer { SimilarityJoin.run($0.baseAddress!, count: n, dimension: d, k: 0, threshold: 0.5) }
    #expect(full.pairs.count == 180 && !full.truncated)
    let cut = unit.withUnsafeBufferPointer { SimilarityJoin.run($0.baseAddress!, count: n, dimension: d, k: 0, threshold: 0.5, maxPairs: 50) }
    #expect(cut.truncated && cut.pairs.count == 50)
    #expect(cut.pairs == Array(full.pairs.prefix(50)))
}

// MARK: duplicates and leakage

@Test func exactAndNearDuplicatesAndLeakage() throws {
    let d = 8
    // Image rows (by sha): a (train), a2 at cosine 0.95 from a (val: a leak), b (train) and b2 at 0.93
    // (train: within), c and c2 at 0.85 (below the 0.90 threshold), e far from all.
    let rows: [(String, [Float])] = [
        ("a", planeVector(d, 0, 1, angle: 0)), ("a2", planeVector(d, 0, 1, angle: acos(0.95))),
        ("b", planeVector(d, 2, 3, angle: 0)), ("b2", planeVector(d, 2, 3, angle: acos(0.93))),
        ("c", planeVector(d, 4, 5, angle: 0)), ("c2", planeVector(d, 4, 5, angle: acos(0.85))),
        ("e", planeVector(d, 6, 7, angle: 0)),
    ]
    let samples = [
        sample("a", "ants", "train"), sample("a2", "ants", "val"),
        sample("b", "bees", "train"), sample("b2", "ants", "train"),
        sample("c", "ants", "train"), sample("c2", "ants", "val"),
        sample("e", "bees", "train"),
        // exact duplicates: e under two more paths, one in val with another label; x (no features) twice, same label and split
        AuditSample(path: "/data/val/ants/e-copy.jpg", sha256: "e", label: "ants", split: "val"),
        AuditSample(path: "/data/train/bees/e-again.jpg", sha256: "e", label: "bees", split: "train"),
        AuditSample(path: "/data/train/bees/x1.jpg", sha256: "x", label: "bees", split: "train"),
        AuditSample(path: "/data/train/bees/x2.jpg", sha256: "x", label: "bees", split: "train"),
    ]
    let input = try AuditInput(samples: samples, dimension: d, imageSHA256s: rows.map(\.0), vectors: rows.flatMap(\.1))
    var o = AuditOptions()
    o.labelErrors = false
    o.outlierNeighbours = 2
    let r = try Audit.run(input, options: o)
    #expect(r.counts.samples == 11 && r.counts.images == 8 && r.counts.imagesWithFeatures == 7 && r.counts.samplesWithoutFeatures == 2)

    #expect(r.exactDuplicates.count == 2)
    let e = r.exactDuplicates[0], x = r.exactDuplicates[1]   // conflicting groups first
    #expect(e.sha256 == "e" && e.samples.count == 3 && e.conflictingLabels && e.conflictingSplits)
    #expect(x.sha256 == "x" && x.samples.count == 2 && !x.conflictingLabels && !x.conflictingSplits)

    #expect(r.nearDuplicates.count == 2)
    let leak = r.nearDuplicates[0], within = r.nearDuplicates[1]
    #expect(abs(leak.similarity - 0.95) < 1e-6 && leak.crossSplit && leak.relation == "across train/val" && !leak.labelsDiffer)
    #expect(leak.first.sha256 == "a" && leak.second.sha256 == "a2")
    #expect(abs(within.similarity - 0.93) < 1e-6 && !within.crossSplit && within.relation == "within train" && within.labelsDiffer)
    #expect(r.leaks == 1)

    // A lower threshold catches c/c2 (0.85) too, as another leak.
    o.nearDuplicateThreshold = 0.84
    let lower = try Audit.run(input, options: o)
    #expect(lower.nearDuplicates.count == 3 && lower.leaks == 2)
    #expect(abs(lower.nearDuplicates[2].similarity - 0.85) < 1e-6)
}

// MARK: outliers

@Test func outliersAreRankedByMeanDistanceToTheirNearestNeighbours() throws {
    // 30 points tightly around axis 0, and three points at 30, 60 and 90 degrees from it in the (0, 1) plane.
    let d = 6, k = 10
    var rng = SplitMix64(seed: 9)
    var vectors: [Float] = []
    var names: [String] = []
    for i in 0..<30 {
        var v = planeVector(d, 0, 1, angle: 0)
        for t in 2..<d { v[t] = 0.02 * (rng.nextFloat() - 0.5) }
        vectors += v; names.append("c\(i)")
    }
    for deg in [30.0, 60.0, 90.0] {
        vectors += planeVector(d, 0, 1, angle: deg * .pi / 180); names.append("o\(Int(deg))")
    }
    let input = try AuditInput(samples: names.map { sample($0, "ants", "train") }, dimension: d, imageSHA256s: names, vectors: vectors)
    var o = AuditOptions()
    o.labelErrors = false
    o.outlierNeighbours = k
    o.outlierCount = 5
    let r = try Audit.run(input, options: o)
    #expect(r.outliers.map(\.sample.sha256).prefix(3) == ["o90", "o60", "o30"])
    #expect(r.outliers.map(\.rank) == [1, 2, 3, 4, 5])
    // Mean distances checked against a brute-force computation in double precision.
    let n = names.count
    for out in r.outliers {
        let i = names.firstIndex(of: out.sample.sha256)!
        let sims = (0..<n).filter { $0 != i }.map { cosine(vectors, i, $0, d) }.sorted(by: >)
        let expected = sims.prefix(k).reduce(0) { $0 + (1 - $1) } / Double(k)
        #expect(abs(out.meanDistance - expected) < 1e-5)
    }
    // By hand for the 90-degree point: neighbours at 30 and 60 degrees, then 8 of the cluster at ~90.
    #expect(abs(r.outliers[0].meanDistance - ((1 - cos(Double.pi / 6)) + (1 - cos(Double.pi / 3)) + 8) / 10) < 2e-3)
}

// MARK: confident learning

@Test func confidentLearningRuleOnHandMadeProbabilities() {
    // 3 classes. Labels and out-of-fold probabilities made by hand:
    let labels = [0, 0, 0, 0, 1, 1, 1, 2, 2]
    let p: [Double] = [
        0.90, 0.05, 0.05,   // 0
        0.80, 0.10, 0.10,   // 1
        0.30, 0.35, 0.35,   // 2: labelled 0, doubtful (p 0.30, margin -0.05)
        0.40, 0.60, 0.00,   // 3: labelled 0, doubtful (p 0.40, margin -0.20)
        0.05, 0.90, 0.05,   // 4
        0.10, 0.85, 0.05,   // 5
        0.20, 0.70, 0.10,   // 6: labelled 1, 0.70 < 0.8167: a candidate by the rule (margin 0.50)
        0.10, 0.10, 0.80,   // 7
        0.10, 0.10, 0.80,   // 8: equal to its class's threshold: not below it
    ]
    // Thresholds: class 0 (0.90 + 0.80 + 0.30 + 0.40) / 4 = 0.60; class 1 (0.90 + 0.85 + 0.70) / 3 = 0.81667; class 2 0.80.
    let t = ConfidentLearning.thresholds(probabilities: p, labels: labels, classes: 3)
    #expect(abs(t[0]! - 0.60) < 1e-12 && abs(t[1]! - 2.45 / 3) < 1e-12 && abs(t[2]! - 0.80) < 1e-12)
    #expect(ConfidentLearning.candidates(probabilities: p, labels: labels, classes: 3, ranking: .selfConfidence) == [2, 3, 6])
    #expect(ConfidentLearning.candidates(probabilities: p, labels: labels, classes: 3, ranking: .margin) == [3, 2, 6])
    #expect(abs(ConfidentLearning.margin(probabilities: p, row: 3, label: 0, classes: 3) - (-0.20)) < 1e-12)
    // A class nobody is labelled with has no threshold.
    #expect(ConfidentLearning.thresholds(probabilities: [0.5, 0.5, 0.0], labels: [0], classes: 3)[2] == nil)
}

// MARK: cross-validation

@Test func outOfFoldProbabilitiesNeverComeFromTheSamplesOwnFold() throws {
    // A memorising model: a test row whose vector it saw in training gets that row's label with
    // probability 1, any other row 1/classes. Rows of one image (same vector) share a group. If any
    // prediction came from a model that saw the row, or its duplicate, it would not be uniform.
    let d = 4, classes = 3
    var values: [Float] = [], labels: [Int] = [], groups: [Int] = []
    var rng = SplitMix64(seed: 21)
    for g in 0..<45 {
        let v = (0..<d).map { _ in rng.nextFloat() }
        let copies = g % 3 == 0 ? 2 : 1
        for _ in 0..<copies { values += v; labels.append(g % classes); groups.append(g) }
    }
    let memorise: FoldModel = { train, test, rows in
        var seen: [[Float]: Int] = [:]
        for i in 0..<train.count { seen[Array(train.values[(i * train.dimension)..<((i + 1) * train.dimension)])] = train.labels[i] }
        var out = [Double](repeating: 1.0 / Double(train.classes), count: rows * train.classes)
        for r in 0..<rows {
            if let y = seen[Array(test[(r * train.dimension)..<((r + 1) * train.dimension)])] {
                for c in 0..<train.classes { out[r * train.classes + c] = c == y ? 1 : 0 }
            }
        }
        return out
    }
    let fold = stratifiedFolds(labels: labels, groups: groups, classes: classes, folds: 5, seed: 3, stream: RandomStream.auditFolds)
    let p = try CrossValidation.outOfFoldProbabilities(values: values, dimension: d, labels: labels, classes: classes,
                                                        fold: fold, folds: 5, model: memorise)
    #expect(p.allSatisfy { abs($0 - 1.0 / 3) < 1e-12 })
    // The same model predicting its own training rows gives the labels away (the test can fail).
    let all = try LabeledFeatures(values: values, count: labels.count, dimension: d, labels: labels, classes: classes)
    let leaked = try memorise(all, values, labels.count)
    #expect(leaked[0 * classes + labels[0]] == 1)
    // Groups stay together; folds are stratified (per class, group counts per fold differ by at most 1).
    for g in Set(groups) { #expect(Set(groups.indices.filter { groups[$0] == g }.map { fold[$0] }).count == 1) }
    for c in 0..<classes {
        var perFold = [Int](repeating: 0, count: 5)
        var seenGroup = Set<Int>()
        for i in labels.indices where labels[i] == c && seenGroup.insert(groups[i]).inserted { perFold[fold[i]] += 1 }
        #expect(perFold.max()! - perFold.min()! <= 1)
    }
    // Seeded: the same seed gives the same folds, another seed others.
    #expect(stratifiedFolds(labels: labels, groups: groups, classes: classes, folds: 5, seed: 3, stream: RandomStream.auditFolds) == fold)
    #expect(stratifiedFolds(labels: labels, groups: groups, classes: classes, folds: 5, seed: 4, stream: RandomStream.auditFolds) != fold)
}

@Test func flippedLabelsOfSeparableDataRankFirst() throws {
    // Two well-separated Gaussian-like clusters, 60 samples each; 5 labels flipped. The audit's own
    // L-BFGS cross-validation must rank exactly the flipped ones first.
    let d = 3
    var rng = SplitMix64(seed: 4)
    var vectors: [Float] = [], samples: [AuditSample] = [], names: [String] = []
    let flipped: Set<Int> = [3, 17, 64, 88, 101]
    for i in 0..<120 {
        let c = i < 60 ? 0 : 1
        var v = (0..<d).map { _ in rng.nextFloat() - 0.5 }
        v[0] += c == 0 ? 2 : -2
        vectors += v
        let given = flipped.contains(i) ? 1 - c : c
        names.append("s\(i)")
        samples.append(sample("s\(i)", given == 0 ? "ants" : "bees", "train"))
    }
    let input = try AuditInput(samples: samples, dimension: d, imageSHA256s: names, vectors: vectors)
    let r = try Audit.run(input)
    #expect(Set(r.labelIssues.prefix(5).map(\.sample.sha256)) == Set(flipped.map { "s\($0)" }))
    #expect(r.labelIssues.prefix(5).allSatisfy { $0.givenProbability < 0.5 && $0.suggested != $0.sample.label })
    #expect(abs(r.labelSummary!.outOfFoldAccuracy - 115.0 / 120) < 1e-9)   // every clean label predicted, no flipped one
    // Ranked by the given label's probability, lowest first.
    #expect(zip(r.labelIssues, r.labelIssues.dropFirst()).allSatisfy { $0.givenProbability <= $1.givenProbability })
}
