import Reproducible

/// Accuracy, per-class precision and recall, and the confusion matrix of a head on a split.
public struct ClassificationMetrics: Sendable, Equatable {
    /// Rows evaluated.
    public var count: Int
    public var accuracy: Double
    /// Mean cross-entropy (nil when computed from predicted labels alone).
    public var loss: Double?
    /// confusion[true][predicted]: how many rows of class `true` were predicted as `predicted`.
    public var confusion: [[Int]]
    /// Per class: correct / predicted as that class (0 when the class is never predicted).
    public var precision: [Double]
    /// Per class: correct / rows of that class (0 when the class has no rows).
    public var recall: [Double]
    /// Balanced accuracy: the mean recall over the classes that have rows (scikit-learn's
    /// `balanced_accuracy_score`); equals `accuracy` when every class has as many rows.
    public var balancedAccuracy: Double

    public init(predicted: [Int], labels: [Int], classes: Int, loss: Double? = nil) throws(HeadsError) {
        guard predicted.count == labels.count else {
            throw .shapeMismatch("\(predicted.count) predictions for \(labels.count) labels")
        }
        guard classes >= 1 else { throw .invalidOption("classes must be at least 1, got \(classes)") }
        var conf = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
        for (i, (p, t)) in zip(predicted, labels).enumerated() {
            guard t >= 0, t < classes else { throw .labelOutOfRange(row: i, label: t, classes: classes) }
            guard p >= 0, p < classes else { throw .labelOutOfRange(row: i, label: p, classes: classes) }
            conf[t][p] += 1
        }
        var correct = 0
        var precision = [Double](repeating: 0, count: classes)
        var recall = [Double](repeating: 0, count: classes)
        for k in 0..<classes {
            correct += conf[k][k]
            let predictedK = (0..<classes).reduce(0) { $0 + conf[$1][k] }
            let actualK = conf[k].reduce(0, +)
            precision[k] = predictedK > 0 ? Double(conf[k][k]) / Double(predictedK) : 0
            recall[k] = actualK > 0 ? Double(conf[k][k]) / Double(actualK) : 0
        }
        self.count = labels.count
        self.accuracy = labels.isEmpty ? 0 : Double(correct) / Double(labels.count)
        self.loss = loss
        self.confusion = conf
        self.precision = precision
        self.recall = recall
        let present = (0..<classes).filter { conf[$0].reduce(0, +) > 0 }
        self.balancedAccuracy = present.isEmpty ? 0 : present.reduce(0.0) { $0 + recall[$1] } / Double(present.count)
    }

    /// A small text table: accuracy, per-class precision/recall and the confusion matrix.
    public func formatted(classNames: [String]? = nil) -> String {
        let k = confusion.count
        let names = (0..<k).map { i in classNames.flatMap { i < $0.count ? $0[i] : nil } ?? "class \(i)" }
        let width = max(9, names.map(\.count).max() ?? 0)
        func pad(_ s: String) -> String { s.count >= width ? s : String(repeating: " ", count: width - s.count) + s }
        var out = "accuracy \(fixed(accuracy, 4)), balanced accuracy \(fixed(balancedAccuracy, 4)) (\(count) rows)"
        if let loss { out += ", loss \(fixed(loss, 4))" }
        out += "\n" + pad("") + " " + pad("precision") + " " + pad("recall") + "\n"
        for i in 0..<k { out += pad(names[i]) + " " + pad(fixed(precision[i], 4)) + " " + pad(fixed(recall[i], 4)) + "\n" }
        out += "confusion (rows: true, columns: predicted)\n" + pad("") + names.map { " " + pad($0) }.joined() + "\n"
        for i in 0..<k { out += pad(names[i]) + confusion[i].map { " " + pad(String($0)) }.joined() + "\n" }
        return out
    }
}

/// Evaluates a head on a split (first view of each image): loss, accuracy, precision, recall, confusion.
public func evaluate(_ head: LinearHead, on split: LabeledFeatures) throws(HeadsError) -> ClassificationMetrics {
    guard split.dimension == head.dimension else {
        throw .dimensionMismatch(expected: head.dimension, got: split.dimension)
    }
    for (i, l) in split.labels.enumerated() where l >= head.classes {
        throw .labelOutOfRange(row: i, label: l, classes: head.classes)
    }
    let p = try head.probabilities(split.firstViews, rows: split.count)
    let c = head.classes
    var predicted = [Int](repeating: 0, count: split.count)
    var loss: Double = 0
    for r in 0..<split.count {
        var best = 0
        for j in 1..<max(c, 1) where p[r * c + j] > p[r * c + best] { best = j }
        predicted[r] = best
        loss -= Double(p[r * c + split.labels[r]]).logOrFloor
    }
    return try ClassificationMetrics(predicted: predicted, labels: split.labels, classes: c,
                                     loss: loss / Double(split.count))
}

extension Double {
    /// log, floored at log(1e-45) so a probability that underflowed to 0 gives a large finite loss.
    var logOrFloor: Double { Foundation_log(Swift.max(self, 1e-45)) }
}

