import Heads
import Reproducible

/// How label-error candidates are ordered (most suspicious first).
public enum LabelIssueRanking: String, Sendable, Codable, CaseIterable {
    /// By the given label's out-of-fold probability, lowest first (cleanlab's `self_confidence`).
    case selfConfidence = "self-confidence"
    /// By p(given label) - max p(other label), lowest first (cleanlab's `normalized_margin` before scaling).
    case margin
}

/// A classifier fitted on some rows that gives class probabilities for others: what a k-fold
/// cross-validation trains once per fold. `train` holds the other folds' rows only.
public typealias FoldModel = @Sendable (_ train: LabeledFeatures, _ test: [Float], _ testRows: Int) throws -> [Double]

public enum CrossValidation {
    /// Out-of-fold class probabilities (rows x classes): for each fold f, `model` is fitted on the rows
    /// of the other folds and predicts the rows of fold f. A row's probabilities never come from a model
    /// that saw it (nor another row of its fold).
    public static func outOfFoldProbabilities(values: [Float], dimension d: Int, labels: [Int], classes: Int,
                                              fold: [Int], folds: Int, model: FoldModel) throws -> [Double] {
        let n = labels.count
        var out = [Double](repeating: 0, count: n * classes)
        for f in 0..<folds {
            var trainValues: [Float] = [], trainLabels: [Int] = []
            var testValues: [Float] = [], testRows: [Int] = []
            for r in 0..<n {
                let row = values[(r * d)..<((r + 1) * d)]
                if fold[r] == f { testValues.append(contentsOf: row); testRows.append(r) }
                else { trainValues.append(contentsOf: row); trainLabels.append(labels[r]) }
            }
            if testRows.isEmpty { continue }
            guard !trainLabels.isEmpty else {
                throw AuditError.tooFewSamples("fold \(f) leaves no rows to train on; use fewer folds")
            }
            let train = try LabeledFeatures(values: trainValues, count: trainLabels.count, dimension: d,
                                            labels: trainLabels, classes: classes)
            let p = try model(train, testValues, testRows.count)
            guard p.count == testRows.count * classes else {
                throw AuditError.invalidOption("the fold model returned \(p.count) probabilities for \(testRows.count) rows x \(classes) classes")
            }
            for (t, r) in testRows.enumerated() {
                for c in 0..<classes { out[r * classes + c] = p[t * classes + c] }
            }
        }
        return out
    }

    /// The L-BFGS multinomial logistic regression (`LBFGSTrainer`, standardised features, L2 with `C`)
    /// as a fold model.
    public static func logisticRegression(C: Double) -> FoldModel {
        { train, test, rows in
            var o = LBFGSOptions()
            o.C = C
            let head = try LBFGSTrainer(options: o).train(train).head
            return try head.probabilities(test, rows: rows).map(Double.init)
        }
    }
}

/// Confident learning's simplified rule (Northcutt et al., "Confident learning", 2021): a class's
/// threshold is its average self-confidence, the mean out-of-fold p(class) over the rows labelled with
/// it; a row is a candidate when p(given label) is below its given class's threshold.
public enum ConfidentLearning {
    /// Per class: mean p(class) over rows labelled with it (nil when no row has that label).
    public static func thresholds(probabilities p: [Double], labels: [Int], classes: Int) -> [Double?] {
        var sum = [Double](repeating: 0, count: classes), count = [Int](repeating: 0, count: classes)
        for (r, y) in labels.enumerated() { sum[y] += p[r * classes + y]; count[y] += 1 }
        return (0..<classes).map { count[$0] > 0 ? sum[$0] / Double(count[$0]) : nil }
    }

    /// p(given) - max over other classes of p (1 for a single class).
    public static func margin(probabilities p: [Double], row r: Int, label y: Int, classes: Int) -> Double {
        var other = -Double.infinity
        for c in 0..<classes where c != y { other = max(other, p[r * classes + c]) }
        return other == -.infinity ? 1 : p[r * classes + y] - other
    }

    /// Rows whose given label's probability is below its class's threshold, most suspicious first
    /// by `ranking` (ties: lower row first).
    public static func candidates(probabilities p: [Double], labels: [Int], classes: Int,
                                  ranking: LabelIssueRanking) -> [Int] {
        let t = thresholds(probabilities: p, labels: labels, classes: classes)
        var rows: [Int] = []
        for (r, y) in labels.enumerated() where p[r * classes + y] < (t[y] ?? -.infinity) { rows.append(r) }
        func key(_ r: Int) -> Double {
            ranking == .selfConfidence ? p[r * classes + labels[r]] : margin(probabilities: p, row: r, label: labels[r], classes: classes)
        }
        return rows.sorted { key($0) < key($1) || (key($0) == key($1) && $0 < $1) }
    }
}
