import Foundation
import Audit
import Workflows
import Benchmarks
import Parallelism

let auditRankOption = ChoiceOption<LabelIssueRanking>("--rank", "R", default: .selfConfidence,
    note: "How label-error candidates are ordered: by the given label's out-of-fold probability, or by its margin over the best other class; lowest first.")

let auditCommand = Command(
    path: ["audit"],
    summary: "Audit the data from its cached features: duplicates, train/val leakage, outliers, likely label errors.",
    usage: "audit [--threshold 0.90] [--k 10] [--outliers 20] [--folds 5] [--seed 0] [--C 1] [\(auditRankOption.usage)] "
        + "[--label-splits train,val] [--no-labels] [--top 10] [--html DIR] [--backbone B] [--store PATH] [--json]",
    discussion: """
    Works from the store alone (no image is decoded, except for --html thumbnails):
    - exact duplicates: the same bytes (sha256) under several paths, flagged when their labels or
      splits differ;
    - near duplicates: pairs of distinct images whose view-0 feature vectors have cosine similarity
      >= --threshold, within a split and across splits (train/val leakage). Exact search by blocked
      matrix products; no n x n matrix is held. The default 0.90 was measured on ants/bees with
      MobileNetV2: 396 of 397 copies re-encoded at JPEG quality 80 and resized to 90% stayed
      above it, every pair of distinct images below (README, "Auditing the data"); shots of one
      scene may need --threshold 0.88 and a look;
    - outliers: images with the largest mean cosine distance to their --k nearest other images;
    - likely label errors (confident learning): out-of-fold probabilities from --folds stratified,
      seeded cross-validated L-BFGS logistic regressions (C = --C, standardised features); a sample
      is a candidate when its given label's probability is below that class's average
      self-confidence (the mean probability of the class over the samples labelled with it).
    The terminal shows the first --top findings of each kind; --json prints them all (the same
    result a library user gets from Workflows' `auditStore`).
    --html DIR writes DIR/index.html with thumbnails in DIR/audit-thumbnails/ (created when missing).
    It only replaces files an earlier `probe audit --html` wrote there (listed in DIR/.probe-audit).

    EXAMPLES:
      probe audit
      probe audit --html cache/audit --top 20
      probe audit --label-splits train --rank margin --json > audit.json
      probe audit --threshold 0.95 --no-labels
    """,
    options: [
        Option("--threshold", "T", "Near-duplicate cosine similarity threshold (default 0.90)."),
        Option("--k", "K", "Outliers: neighbours averaged over (default 10)."),
        Option("--outliers", "N", "Outliers listed (default 20)."),
        Option("--folds", "F", "Label errors: cross-validation folds (default 5)."),
        Option("--seed", "S", "Label errors: seed of the fold assignment (default 0)."),
        Option("--C", "C", "Label errors: inverse L2 strength of the heads, scikit-learn's C (default 1)."),
        auditRankOption.option,
        Option("--label-splits", "S1,S2", "Label errors: only samples of these splits (default: every labelled sample)."),
        Option("--no-labels", nil, "Skip the label-error check."),
        Option("--top", "N", "Findings of each kind shown on the terminal (default 10)."),
        Option("--html", "DIR", "Also write an HTML page with thumbnails into DIR."),
        storeBackboneOption, storeOption, jsonOption, threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        var o = AuditOptions()
        o.nearDuplicateThreshold = try args.double("--threshold", default: o.nearDuplicateThreshold, range: -0.999...1)
        o.outlierNeighbours = try args.int("--k", default: o.outlierNeighbours, range: 1...10_000)
        o.outlierCount = try args.int("--outliers", default: o.outlierCount, range: 0...1_000_000)
        o.folds = try args.int("--folds", default: o.folds, range: 2...1000)
        o.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        o.C = try args.double("--C", default: o.C, range: 1e-12...1e12)
        o.ranking = try args.value(auditRankOption)
        if let s = args.string("--label-splits") { o.labelSplits = s.split(separator: ",").map(String.init) }
        o.labelErrors = !args.flag("--no-labels")
        let top = try args.int("--top", default: 10, range: 0...1_000_000)
        let store = try openStore(args, readOnly: true)
        let backbone = try selectBackbone(store, args)
        let result = try auditStore(store, backbone: backbone, options: o, workers: defaultWorkerCount)
        var page: String? = nil
        if let dir = args.string("--html") { page = try writeAuditPage(result, to: dir) }
        if args.flag("--json") {
            try printJSON(result)
        } else {
            print(result.render(top: top), terminator: "")
        }
        if let page { printError("wrote \(page)") }
        return 0
    }
)

let benchAuditCommand = Command(
    path: ["bench", "audit"],
    summary: "Benchmark the audit's near-duplicate and outlier search over synthetic vectors.",
    usage: "bench audit [--count 100000] [--dim 512] [--rounds 3] [--threshold 0.90]",
    discussion: """
    Makes --count synthetic feature-like vectors (non-negative, clustered, the last 100 near copies
    of the first 100) and times the exact similarity join of `probe audit` (every pair at or above
    --threshold, the 10 nearest neighbours of every row) --rounds times: each time, the median, the
    products' GFLOP/s and how many planted copies were found. Prints figures; asserts nothing.

    EXAMPLES:
      probe bench audit
      probe bench audit --threads 1 --rounds 1
    """,
    options: [
        Option("--count", "N", "Number of vectors (default 100000)."),
        Option("--dim", "D", "Dimension (default 512)."),
        Option("--rounds", "R", "Timed runs (default 3)."),
        Option("--threshold", "T", "Near-duplicate threshold (default 0.90)."),
        threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        print(runAuditBenchmark(count: try args.int("--count", default: 100_000, range: 2...10_000_000),
                                dimension: try args.int("--dim", default: 512, range: 1...65536),
                                threshold: Float(try args.double("--threshold", default: 0.90, range: -0.999...1)),
                                rounds: try args.int("--rounds", default: 3, range: 1...100),
                                workers: defaultWorkerCount), terminator: "")
        return 0
    }
)
