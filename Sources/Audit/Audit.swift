// Audit: what is wrong with a data set, from its cached feature vectors. Exact duplicates (one
// content under several paths), near duplicates and train/val leakage (cosine similarity of view-0
// features), outliers (far from their nearest neighbours) and likely label errors (confident learning
// over out-of-fold probabilities of cross-validated linear heads). Pure computation: no files, no SQL
// (Workflows loads the store and writes the HTML page).

import Foundation
import Heads
import Parallelism

/// Why an audit could not run.
public enum AuditError: Error, CustomStringConvertible, Equatable {
    case invalidOption(String)
    case tooFewSamples(String)
    case shapeMismatch(String)

    public var description: String {
        switch self {
        case .invalidOption(let s): return "invalid audit option: \(s)"
        case .tooFewSamples(let s): return "too few samples: \(s)"
        case .shapeMismatch(let s): return "\(s); re-extract the features"
        }
    }
}

/// One file of the data set (a row of the store's `samples`).
public struct AuditSample: Sendable, Codable, Equatable, Hashable {
    public var path: String
    public var sha256: String
    public var label: String
    public var split: String?
    public init(path: String, sha256: String, label: String, split: String?) {
        self.path = path; self.sha256 = sha256; self.label = label; self.split = split
    }
}

/// What an audit looks at: every sample, and the view-0 feature vector of each distinct image.
public struct AuditInput: Sendable {
    /// All samples (also those without features: exact duplicates need no vector).
    public var samples: [AuditSample]
    public var dimension: Int
    /// The distinct images with a vector, and their vectors (imageSHA256s.count x dimension, row-major).
    public var imageSHA256s: [String]
    public var vectors: [Float]

    public init(samples: [AuditSample], dimension: Int, imageSHA256s: [String], vectors: [Float]) throws {
        guard dimension > 0, vectors.count == imageSHA256s.count * dimension else {
            throw AuditError.shapeMismatch("\(vectors.count) values for \(imageSHA256s.count) images of dimension \(dimension)")
        }
        guard Set(imageSHA256s).count == imageSHA256s.count else {
            throw AuditError.shapeMismatch("an image is listed twice among the vectors")
        }
        if let bad = vectors.firstIndex(where: { !$0.isFinite }) {
            throw AuditError.shapeMismatch("value \(bad % dimension) of image \(imageSHA256s[bad / dimension].prefix(12)) is \(vectors[bad])")
        }
        self.samples = samples; self.dimension = dimension; self.imageSHA256s = imageSHA256s; self.vectors = vectors
    }
}

/// Settings of an audit (the defaults are what `probe audit` uses).
public struct AuditOptions: Sendable, Codable, Equatable {
    /// Pairs of distinct images with cosine similarity >= this are near duplicates. 0.90: measured on
    /// ants/bees with MobileNetV2 (README, "Auditing the data"): 396 of 397 copies re-encoded at JPEG
    /// quality 80 and resized to 90% stayed above it (median 0.984), the closest pair of distinct
    /// images below it (0.886).
    public var nearDuplicateThreshold: Double = 0.90
    /// Outliers: mean cosine distance to this many nearest other images.
    public var outlierNeighbours = 10
    /// How many outliers to list (the farthest first).
    public var outlierCount = 20
    /// Label errors: folds of the stratified cross-validation, its seed, the heads' C.
    public var folds = 5
    public var seed: UInt64 = 0
    public var C = 1.0
    public var ranking: LabelIssueRanking = .selfConfidence
    /// Only samples of these splits are checked for label errors (nil: every sample with a label).
    public var labelSplits: [String]? = nil
    /// At most this many near-duplicate pairs are kept (the most similar).
    public var maxPairs = 100_000
    public var labelErrors = true

    public init() {}

    func validate() throws {
        guard nearDuplicateThreshold.isFinite, nearDuplicateThreshold > -1, nearDuplicateThreshold <= 1 else {
            throw AuditError.invalidOption("the near-duplicate threshold must be in (-1, 1], got \(nearDuplicateThreshold)")
        }
        guard outlierNeighbours >= 1 else { throw AuditError.invalidOption("outlier neighbours must be at least 1") }
        guard outlierCount >= 0 else { throw AuditError.invalidOption("the outlier count must be >= 0") }
        guard folds >= 2 else { throw AuditError.invalidOption("folds must be at least 2, got \(folds)") }
        guard C > 0, C.isFinite else { throw AuditError.invalidOption("C must be a positive number, got \(C)") }
        guard maxPairs >= 1 else { throw AuditError.invalidOption("max pairs must be at least 1") }
    }
}

/// One content under several paths.
public struct ExactDuplicate: Sendable, Codable, Equatable {
    public var sha256: String
    public var samples: [AuditSample]
    public var conflictingLabels: Bool
    public var conflictingSplits: Bool
}

/// Two distinct images with similar features.
public struct NearDuplicate: Sendable, Codable, Equatable {
    public var similarity: Double
    /// A sample of each image: the first paths whose splits differ if any, else each image's first path
    /// (exact duplicates list an image's other paths).
    public var first: AuditSample
    public var second: AuditSample
    /// "within train", "across train/val", ... (splits of the two shown samples; "-" for none).
    public var relation: String
    /// The two images are in different splits (train/val leakage when one is train).
    public var crossSplit: Bool
    public var labelsDiffer: Bool
}

/// An image far from its nearest neighbours.
public struct Outlier: Sendable, Codable, Equatable {
    public var rank: Int
    public var sample: AuditSample
    /// Mean cosine distance (1 - similarity) to its k nearest other images.
    public var meanDistance: Double
    public var nearestSimilarity: Double
}

/// A sample whose given label its out-of-fold heads doubt.
public struct LabelIssue: Sendable, Codable, Equatable {
    public var rank: Int
    public var sample: AuditSample
    /// Out-of-fold probability of the given label, and the threshold it fell below.
    public var givenProbability: Double
    public var threshold: Double
    public var suggested: String
    public var suggestedProbability: Double
    /// p(given) - max p(other).
    public var margin: Double
}

/// Everything an audit found (what `probe audit --json` prints).
public struct AuditResult: Sendable, Codable {
    public struct Counts: Sendable, Codable, Equatable {
        public var samples: Int
        public var images: Int
        public var imagesWithFeatures: Int
        public var samplesWithoutFeatures: Int
    }
    public struct LabelSummary: Sendable, Codable, Equatable {
        public var samples: Int
        public var classes: [String]
        /// Per class: average self-confidence (the threshold).
        public var thresholds: [Double?]
        public var folds: Int
        public var seed: UInt64
        public var C: Double
        public var ranking: LabelIssueRanking
        /// Accuracy of the out-of-fold predictions against the given labels.
        public var outOfFoldAccuracy: Double
        public var candidates: Int
    }
    public var options: AuditOptions
    public var counts: Counts
    public var exactDuplicates: [ExactDuplicate]
    public var nearDuplicates: [NearDuplicate]
    public var nearDuplicatesTruncated: Bool
    /// Near-duplicate pairs across splits (train/val leakage), a subset of `nearDuplicates`.
    public var leaks: Int
    public var outliers: [Outlier]
    public var labelSummary: LabelSummary?
    public var labelIssues: [LabelIssue]
    /// Seconds spent: similarity join, cross-validation, total.
    public var seconds: [String: Double]
    /// Set by the caller (store path, backbone) to describe where the vectors came from.
    public var source: [String: String] = [:]
}

public enum Audit {
    /// Runs every check over `input`.
    public static func run(_ input: AuditInput, options: AuditOptions = AuditOptions(),
                           workers: Int = defaultWorkerCount) throws -> AuditResult {
        try options.validate()
        let clock = ContinuousClock(), start = clock.now
        let d = input.dimension, n = input.imageSHA256s.count
        var rowOfImage: [String: Int] = [:]
        for (r, s) in input.imageSHA256s.enumerated() { rowOfImage[s] = r }
        // Samples by image, sorted by path: the first is an image's representative.
        var samplesOfImage: [String: [AuditSample]] = [:]
        for s in input.samples.sorted(by: { $0.path < $1.path }) { samplesOfImage[s.sha256, default: []].append(s) }

        // Exact duplicates.
        var exact: [ExactDuplicate] = []
        for (sha, list) in samplesOfImage where list.count > 1 {
            exact.append(ExactDuplicate(sha256: sha, samples: list, conflictingLabels: Set(list.map(\.label)).count > 1,
                                        conflictingSplits: Set(list.map { $0.split ?? "" }).count > 1))
        }
        exact.sort { a, b in
            let ca = a.conflictingLabels || a.conflictingSplits, cb = b.conflictingLabels || b.conflictingSplits
            return ca != cb ? ca : a.samples[0].path < b.samples[0].path
        }

        // Near duplicates and outliers: one similarity join over the normalised vectors.
        let joinStart = clock.now
        let unit = normalizedRows(input.vectors, count: n, dimension: d)
        let join = unit.withUnsafeBufferPointer { p in
            SimilarityJoin.run(p.baseAddress!, count: n, dimension: d, k: options.outlierNeighbours,
                               threshold: Float(options.nearDuplicateThreshold), maxPairs: options.maxPairs, workers: workers)
        }
        let joinSeconds = (clock.now - joinStart).seconds
        func representative(_ row: Int) -> AuditSample {
            let sha = input.imageSHA256s[row]
            return samplesOfImage[sha]?.first ?? AuditSample(path: sha, sha256: sha, label: "", split: nil)
        }
        var near: [NearDuplicate] = []
        var leaks = 0
        /// The samples shown for a pair: the first (by paths) whose splits differ when there is one
        /// (an image under several paths may be in several splits), else the first of each.
        func shown(_ r1: Int, _ r2: Int) -> (AuditSample, AuditSample) {
            let l1 = samplesOfImage[input.imageSHA256s[r1]] ?? [representative(r1)]
            let l2 = samplesOfImage[input.imageSHA256s[r2]] ?? [representative(r2)]
            for x in l1 { for y in l2 where x.split != y.split { return (x, y) } }
            return (l1[0], l2[0])
        }
        for p in join.pairs {
            let (a, b) = shown(p.first, p.second)
            let sa = a.split ?? "-", sb = b.split ?? "-"
            let cross = sa != sb
            if cross { leaks += 1 }
            near.append(NearDuplicate(similarity: Double(p.similarity), first: a, second: b,
                                      relation: cross ? "across \(sa)/\(sb)" : "within \(sa)", crossSplit: cross,
                                      labelsDiffer: a.label != b.label))
        }
        var outliers: [Outlier] = []
        let k = join.k
        if k > 0 {
            var scored: [(Int, Double, Double)] = []
            for r in 0..<n {
                var sum = 0.0
                for e in 0..<k { sum += 1 - Double(join.similarities[r * k + e]) }
                scored.append((r, sum / Double(k), Double(join.similarities[r * k])))
            }
            scored.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
            for (i, s) in scored.prefix(options.outlierCount).enumerated() {
                outliers.append(Outlier(rank: i + 1, sample: representative(s.0), meanDistance: s.1, nearestSimilarity: s.2))
            }
        }

        // Label errors.
        var summary: AuditResult.LabelSummary? = nil
        var issues: [LabelIssue] = []
        let cvStart = clock.now
        if options.labelErrors {
            (summary, issues) = try labelErrors(input: input, rowOfImage: rowOfImage, options: options)
        }
        let cvSeconds = (clock.now - cvStart).seconds
        let withFeatures = input.samples.filter { rowOfImage[$0.sha256] != nil }.count
        return AuditResult(options: options,
                           counts: .init(samples: input.samples.count, images: samplesOfImage.count, imagesWithFeatures: n,
                                         samplesWithoutFeatures: input.samples.count - withFeatures),
                           exactDuplicates: exact, nearDuplicates: near, nearDuplicatesTruncated: join.truncated, leaks: leaks,
                           outliers: outliers, labelSummary: summary, labelIssues: issues,
                           seconds: ["similarity": joinSeconds, "crossValidation": cvSeconds, "total": (clock.now - start).seconds])
    }

    static func labelErrors(input: AuditInput, rowOfImage: [String: Int], options: AuditOptions) throws
        -> (AuditResult.LabelSummary?, [LabelIssue]) {
        let d = input.dimension
        let scope = input.samples
            .filter { rowOfImage[$0.sha256] != nil && !$0.label.isEmpty }
            .filter { s in options.labelSplits.map { $0.contains(s.split ?? "") } ?? true }
            .sorted { $0.path < $1.path }
        let classes = Array(Set(scope.map(\.label))).sorted()
        guard classes.count >= 2 else { return (nil, []) }
        let classIndex = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let labels = scope.map { classIndex[$0.label]! }
        var perClass = [Int](repeating: 0, count: classes.count)
        for y in labels { perClass[y] += 1 }
        guard scope.count >= options.folds else {
            throw AuditError.tooFewSamples("\(scope.count) labelled samples for \(options.folds) folds; use --folds \(max(2, scope.count))")
        }
        var values = [Float]()
        values.reserveCapacity(scope.count * d)
        var groupOf: [String: Int] = [:]
        var groups: [Int] = []
        for s in scope {
            let r = rowOfImage[s.sha256]!
            values.append(contentsOf: input.vectors[(r * d)..<((r + 1) * d)])
            if groupOf[s.sha256] == nil { groupOf[s.sha256] = groupOf.count }
            groups.append(groupOf[s.sha256]!)
        }
        let fold = stratifiedFolds(labels: labels, groups: groups, classes: classes.count,
                                   folds: options.folds, seed: options.seed, stream: RandomStream.auditFolds)
        let p = try CrossValidation.outOfFoldProbabilities(values: values, dimension: d, labels: labels, classes: classes.count,
                                                            fold: fold, folds: options.folds,
                                                            model: CrossValidation.logisticRegression(C: options.C))
        let c = classes.count
        let thresholds = ConfidentLearning.thresholds(probabilities: p, labels: labels, classes: c)
        let rows = ConfidentLearning.candidates(probabilities: p, labels: labels, classes: c, ranking: options.ranking)
        var correct = 0
        func argmax(_ r: Int, excluding y: Int? = nil) -> Int {
            var best = -1
            for j in 0..<c where j != y { if best < 0 || p[r * c + j] > p[r * c + best] { best = j } }
            return best
        }
        for r in 0..<labels.count where argmax(r) == labels[r] { correct += 1 }
        let issues = rows.enumerated().map { i, r in
            let y = labels[r], other = argmax(r, excluding: y)
            return LabelIssue(rank: i + 1, sample: scope[r], givenProbability: p[r * c + y], threshold: thresholds[y] ?? 0,
                              suggested: classes[other], suggestedProbability: p[r * c + other],
                              margin: ConfidentLearning.margin(probabilities: p, row: r, label: y, classes: c))
        }
        let summary = AuditResult.LabelSummary(samples: scope.count, classes: classes, thresholds: thresholds, folds: options.folds,
                                               seed: options.seed, C: options.C, ranking: options.ranking,
                                               outOfFoldAccuracy: Double(correct) / Double(labels.count), candidates: issues.count)
        return (summary, issues)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
