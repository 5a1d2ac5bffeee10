import Store
import Heads

/// The top classes of one image.
public struct ImagePrediction: Sendable, Codable {
    public struct Entry: Sendable, Codable {
        public var label: String
        public var probability: Double
    }
    public var path: String
    public var top: [Entry]
    /// Whether the features came from the store.
    public var cached: Bool
    /// False when its features were computed now but not cached, because the store is read-only.
    public var stored: Bool = true
}

/// Predicts the top `k` classes of image files with a stored head.
public func predictImages(_ paths: [String], store: FeatureStore, head: LoadedHead, weightsPath: String?,
                          topK k: Int = 3) throws -> [ImagePrediction] {
    let feats = try featuresOfImages(paths, store: store, backbone: head.backbone, weightsPath: weightsPath)
    return try feats.map { f in
        let top = try head.head.predict(f.vector, topK: min(k, head.record.classes.count), temperature: head.record.temperature ?? 1)
        return ImagePrediction(path: f.path, top: top.map { .init(label: head.record.classes[$0.label], probability: Double($0.probability)) },
                               cached: f.cached, stored: f.stored)
    }
}

/// Evaluation of a head on one split of the store.
public struct HeadEvaluation: Sendable {
    public var split: String
    public var classNames: [String]
    public var metrics: ClassificationMetrics
    /// The head's saved temperature (nil: not calibrated).
    public var temperature: Double?
    /// With `calibrate`: temperature scaling fitted on this split (and saved with the head).
    public var calibration: CalibrationResult?

    public func render() -> String {
        var out = "\(metrics.count) images of split '\(split)'\n" + metrics.formatted(classNames: classNames)
        if let c = calibration {
            out += String(format: "temperature scaling on '%@': T = %.4f (saved with the head), ECE (%d bins) %.4f -> %.4f, NLL %.4f -> %.4f\n",
                          split, c.temperature, c.bins, c.eceBefore, c.eceAfter, c.nllBefore, c.nllAfter)
        } else if let t = temperature {
            out += String(format: "temperature %.4f (predict's probabilities are softmax(logits / T))\n", t)
        }
        return out
    }
}

/// Accuracy, per-class precision and recall, and the confusion matrix of a head on a split.
/// With `calibrate`, also fits the head's temperature on the split and saves it in the store.
public func evaluateHead(_ loaded: LoadedHead, store: FeatureStore, split: String = "val", calibrate fitTemperature: Bool = false) throws -> HeadEvaluation {
    let f = try store.labeledFeatures(backbone: loaded.backbone, split: split)
    let classes = loaded.record.classes
    let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
    var values: [Float] = []
    var labels: [Int] = []
    let d = loaded.backbone.dimension
    for i in 0..<f.count {
        guard let l = index[f.labels[i]] else { continue }
        values += f.vectors[(i * d)..<((i + 1) * d)]
        labels.append(l)
    }
    guard !labels.isEmpty else {
        throw WorkflowError.noFeatures("no samples of split '\(split)' with the head's classes (\(classes.joined(separator: ", "))) in the store")
    }
    let data = try LabeledFeatures(values: values, count: labels.count, dimension: d, labels: labels, classes: classes.count)
    var e = HeadEvaluation(split: split, classNames: classes, metrics: try evaluate(loaded.head, on: data),
                           temperature: loaded.record.temperature)
    if fitTemperature {
        let c = try calibrate(loaded.head, on: data)
        try store.setHeadTemperature(name: loaded.record.name, temperature: c.temperature)
        e.calibration = c
        e.temperature = c.temperature
    }
    return e
}
