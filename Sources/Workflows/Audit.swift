import Foundation
import Store
import Audit
import Parallelism

/// The audit's input from a store: every sample, and the view-0 (`val` transform) vector of each
/// distinct image of `backbone`.
public func auditInput(store: FeatureStore, backbone: StoredBackbone) throws -> AuditInput {
    let samples = try store.samples().map { AuditSample(path: $0.path, sha256: $0.sha256, label: $0.label, split: $0.split) }
    let f = try store.labeledFeatures(backbone: backbone)
    let d = backbone.dimension
    var seen = Set<String>()
    var shas: [String] = []
    var vectors: [Float] = []
    vectors.reserveCapacity(f.vectors.count)
    for i in 0..<f.count where seen.insert(f.sha256s[i]).inserted {
        shas.append(f.sha256s[i])
        vectors.append(contentsOf: f.vectors[(i * d)..<((i + 1) * d)])
    }
    return try AuditInput(samples: samples, dimension: d, imageSHA256s: shas, vectors: vectors)
}

/// `probe audit`: the audit of a store's samples over `backbone`'s features. The result says where
/// the vectors came from (`source`).
public func auditStore(_ store: FeatureStore, backbone: StoredBackbone, options: AuditOptions = AuditOptions(),
                       workers: Int = defaultWorkerCount) throws -> AuditResult {
    let input = try auditInput(store: store, backbone: backbone)
    guard !input.imageSHA256s.isEmpty else {
        throw WorkflowError.noFeatures("the store holds no \(backbone.architecture) features; run `probe extract DIR` first")
    }
    var result = try Audit.run(input, options: options, workers: workers)
    result.source = ["store": store.path, "backbone": backbone.architecture, "weightsSHA256": backbone.weightsSHA256,
                     "dimension": String(backbone.dimension)]
    return result
}

extension AuditResult {
    /// The audit's counts as table rows (finding, count), for its page and the report.
    func countRows() -> [[String]] {
        [
            ["label-error candidates (given label's probability below its class's average self-confidence)", String(labelIssues.count)],
            ["near-duplicate pairs (cosine >= \(options.nearDuplicateThreshold))", String(nearDuplicates.count)],
            ["  of which across splits (train/val leakage)", String(leaks)],
            ["exact-duplicate groups", String(exactDuplicates.count)],
            ["  with conflicting labels or splits", String(exactDuplicates.filter { $0.conflictingLabels || $0.conflictingSplits }.count)],
            ["outliers listed", String(outliers.count)],
        ]
    }

    /// A readable summary: counts, then the first `top` findings of each kind.
    public func render(top: Int = 10) -> String {
        var s = "audit of \(counts.samples) samples (\(counts.images) distinct images, \(counts.imagesWithFeatures) with features"
        if let b = source["backbone"] { s += " of \(b)" }
        s += ")\n"
        if counts.samplesWithoutFeatures > 0 {
            s += "  \(counts.samplesWithoutFeatures) samples have no features of this backbone and are only checked for exact duplicates\n"
        }
        let conflicting = exactDuplicates.filter { $0.conflictingLabels || $0.conflictingSplits }.count
        s += "\nexact duplicates (same bytes under several paths): \(exactDuplicates.count) group(s), \(conflicting) with conflicting labels or splits\n"
        for g in exactDuplicates.prefix(top) {
            var flags: [String] = []
            if g.conflictingLabels { flags.append("LABELS DIFFER") }
            if g.conflictingSplits { flags.append("SPLITS DIFFER") }
            s += "  \(g.sha256.prefix(12))  \(flags.joined(separator: ", "))\n"
            for x in g.samples { s += "      \(x.split ?? "-")/\(x.label)  \(x.path)\n" }
        }
        s += String(format: "\nnear duplicates (cosine >= %.3f): %d pair(s), %d across splits (leakage)%@\n",
                    options.nearDuplicateThreshold, nearDuplicates.count, leaks, nearDuplicatesTruncated ? " (truncated)" : "")
        // Leaks first, then the rest.
        let ordered = nearDuplicates.filter(\.crossSplit) + nearDuplicates.filter { !$0.crossSplit }
        for p in ordered.prefix(top) {
            s += String(format: "  %.4f  %@%@\n      %@\n      %@\n", p.similarity, p.relation, p.labelsDiffer ? ", labels differ" : "",
                        p.first.path, p.second.path)
        }
        s += "\noutliers (mean cosine distance to the \(options.outlierNeighbours) nearest images), farthest first:\n"
        for o in outliers.prefix(top) {
            s += String(format: "  %3d  %.4f  %@/%@  %@\n", o.rank, o.meanDistance, o.sample.split ?? "-", o.sample.label, o.sample.path)
        }
        if let l = labelSummary {
            let t = zip(l.classes, l.thresholds).map { "\($0) \($1.map { String(format: "%.3f", $0) } ?? "-")" }.joined(separator: ", ")
            s += String(format: "\nlikely label errors: %d candidate(s) of %d samples (%d-fold out-of-fold L-BFGS heads, C %g, seed %llu; out-of-fold accuracy %.4f)\n",
                        l.candidates, l.samples, l.folds, l.C, l.seed, l.outOfFoldAccuracy)
            s += "  a candidate's given-label probability is below its class's average self-confidence (\(t)); ranked by \(l.ranking.rawValue), lowest first\n"
            for i in labelIssues.prefix(top) {
                s += String(format: "  %3d  p(%@) %.3g -> %@ %.3f  %@\n", i.rank, i.sample.label, i.givenProbability, i.suggested,
                            i.suggestedProbability, i.sample.path)
            }
        } else if options.labelErrors {
            s += "\nlikely label errors: not checked (fewer than 2 classes)\n"
        }
        s += String(format: "\ntime: %.2f s (similarity search %.2f s, cross-validation %.2f s)\n",
                    seconds["total"] ?? 0, seconds["similarity"] ?? 0, seconds["crossValidation"] ?? 0)
        return s
    }
}
