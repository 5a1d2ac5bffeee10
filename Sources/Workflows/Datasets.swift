import Store
import Heads
import Extract

/// The cached features of a store's train and validation splits, as head-training matrices.
public struct HeadDatasets: Sendable {
    /// Class names (sorted, like ImageFolder); labels index into this.
    public let classNames: [String]
    /// Training images; `views > 1` when augmented views are used (one drawn per image per epoch).
    public let train: LabeledFeatures
    public let validation: LabeledFeatures?
    /// Paths of the validation rows (for reports).
    public let validationPaths: [String]
}

public enum WorkflowError: Error, CustomStringConvertible {
    case noTrainingData(String)
    case unknownHead(String, available: [String])
    case unknownClass(String)
    case backboneMismatch(String)
    case noFeatures(String)
    /// An image argument that is a directory.
    case imageIsDirectory(String)
    /// An image argument that does not exist or cannot be read.
    case imageUnreadable(String)

    public var description: String {
        switch self {
        case .noTrainingData(let s): return s
        case .unknownHead(let name, let available):
            return "no head named '\(name)' in the store" + (available.isEmpty ? " (train one with `probe train --name NAME`)"
                                                                               : "; heads: \(available.joined(separator: ", "))")
        case .unknownClass(let s): return s
        case .backboneMismatch(let s): return s
        case .noFeatures(let s): return s
        case .imageIsDirectory(let p):
            return "\(p) is a directory, not an image file: name image files (e.g. \(p)/*.jpg), or run `probe extract \(p)` to add a folder's images to the store"
        case .imageUnreadable(let p):
            return "cannot read \(p): no such file, or not readable; check the path"
        }
    }
}

/// Loads the features of `trainSplit` (all samples when the store has no splits) and, when
/// present, of `validationSplit`. With `useViews`, the augmented views (1...N) of every training
/// image that has all of them replace view 0 in training.
public func loadHeadDatasets(store: FeatureStore, backbone: StoredBackbone, trainSplit: String = "train",
                             validationSplit: String = "val", useViews: Bool = true) throws -> HeadDatasets {
    let all = try store.labeledFeatures(backbone: backbone)
    guard all.count > 0 else {
        throw WorkflowError.noFeatures("the store has no features of \(backbone.architecture) (run `probe extract DIR` first)")
    }
    let hasSplits = all.splits.contains { $0 == trainSplit }
    let trainRows = all.splits.indices.filter { hasSplits ? all.splits[$0] == trainSplit : true }
    let valRows = hasSplits ? all.splits.indices.filter { all.splits[$0] == validationSplit } : []
    let classNames = Array(Set(trainRows.map { all.labels[$0] })).sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
    guard classNames.count >= 2 else {
        throw WorkflowError.noTrainingData("training needs at least 2 classes; the \(hasSplits ? trainSplit + " split" : "store") has \(classNames)")
    }
    let index = Dictionary(uniqueKeysWithValues: classNames.enumerated().map { ($1, $0) })
    let d = backbone.dimension

    // Augmented views: those present for every training image.
    var views: [(String, Int)] = []
    if useViews {
        let stored = try store.views(backbone: backbone).filter { $0.view > 0 && $0.transform == augmentedTransform }
        views = stored.map { ($0.transform, $0.view) }
    }
    var trainValues: [Float] = []
    var trainLabels: [Int] = []
    var perView: [[String: [Float]]] = []
    for (t, v) in views {
        let f = try store.labeledFeatures(backbone: backbone, split: hasSplits ? trainSplit : nil, transform: t, view: v)
        var bySHA: [String: [Float]] = [:]
        for i in 0..<f.count { bySHA[f.sha256s[i]] = Array(f.vectors[(i * d)..<((i + 1) * d)]) }
        perView.append(bySHA)
    }
    let usable = views.isEmpty ? [] : perView
    var viewCount = 1
    if !usable.isEmpty && trainRows.allSatisfy({ r in usable.allSatisfy { $0[all.sha256s[r]] != nil } }) {
        viewCount = usable.count
        for r in trainRows {
            for m in usable { trainValues += m[all.sha256s[r]]! }
            trainLabels.append(index[all.labels[r]]!)
        }
    } else {
        for r in trainRows {
            trainValues += all.vectors[(r * d)..<((r + 1) * d)]
            trainLabels.append(index[all.labels[r]]!)
        }
    }
    let train = try LabeledFeatures(values: trainValues, count: trainRows.count, dimension: d, views: viewCount,
                                          labels: trainLabels, classes: classNames.count)
    var validation: LabeledFeatures? = nil
    var valPaths: [String] = []
    let knownVal = valRows.filter { index[all.labels[$0]] != nil }
    if !knownVal.isEmpty {
        var values: [Float] = []
        for r in knownVal { values += all.vectors[(r * d)..<((r + 1) * d)] }
        validation = try LabeledFeatures(values: values, count: knownVal.count, dimension: d,
                                               labels: knownVal.map { index[all.labels[$0]]! }, classes: classNames.count)
        valPaths = knownVal.map { all.paths[$0] }
    }
    return HeadDatasets(classNames: classNames, train: train, validation: validation, validationPaths: valPaths)
}
