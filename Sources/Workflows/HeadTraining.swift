import Foundation
import NN
import OutputFiles
import Store
import Heads
import Weights

/// How a head is trained.
public enum Solver: String, Sendable, CaseIterable, Codable {
    /// Mini-batch SGD with the tutorial's settings (PyTorch semantics).
    case sgd
    /// Full-batch L-BFGS multinomial logistic regression with an L2 penalty.
    case lbfgs
}

/// Settings of `trainHead`.
public struct TrainHeadOptions: Sendable {
    public var name: String
    public var solver: Solver = .sgd
    public var sgd = SGDOptions.tutorial()
    /// Tolerance 1e-10 (`LBFGSOptions.precise`): scikit-learn's optimum to 1e-6.
    public var lbfgs = LBFGSOptions.precise
    /// Use augmented views from the store when every training image has them.
    public var useViews = true
    public var trainSplit = "train"
    public var validationSplit = "val"
    /// Class weights of either solver's loss (`SGDOptions.classWeight`, `LBFGSOptions.classWeight`).
    public var classWeight = ClassWeighting.none
    /// Fit the head's softmax temperature on the validation split (temperature scaling) and save it.
    public var calibrate = false
    public init(name: String) { self.name = name }
}

/// A trained head with what the tool prints and keeps.
public struct TrainedHead: Sendable {
    public var record: HeadRecord
    public var head: LinearHead
    public var classNames: [String]
    /// The tutorial's per-epoch lines (SGD) or a summary of the optimisation (L-BFGS).
    public var log: String
    public var bestValidationAccuracy: Double?
    public var epochs: [SGDEpochMetrics]
    public var trainingSeconds: Double
    public var datasets: HeadDatasets
    /// The saved head on the validation split (nil without one).
    public var validationMetrics: ClassificationMetrics?
    /// Temperature scaling on the validation split (with `calibrate`).
    public var calibration: CalibrationResult?
    /// L-BFGS: the optimum's sum CE + 1/(2C) ||W||^2 (W of the standardised features when standardised).
    public var objective: Double?
}

/// Per-epoch metrics as stored in the head's metrics JSON.
struct EpochJSON: Codable {
    var epoch: Int, lr: Double, train_loss: Double, train_acc: Double
    var val_loss: Double?, val_acc: Double?, seconds: Double
}

/// Trains a head over the cached features of `backbone` and saves it in the store under its name.
public func trainHead(store: FeatureStore, backbone: StoredBackbone, options: TrainHeadOptions) throws -> TrainedHead {
    guard !options.name.isEmpty else { throw WorkflowError.noTrainingData("a head needs a name (--name NAME)") }
    // Said before training, not after: the head could not be saved.
    try store.requireWritable("save the head '\(options.name)' (nothing was trained)")
    let data = try loadHeadDatasets(store: store, backbone: backbone, trainSplit: options.trainSplit,
                                    validationSplit: options.validationSplit, useViews: options.useViews)
    var settings: [String: String] = ["solver": options.solver.rawValue, "views": String(data.train.views),
                                      "train_images": String(data.train.count), "class_weight": options.classWeight.rawValue]
    let head: LinearHead
    var log: String
    var best: Double?
    var epochs: [SGDEpochMetrics] = []
    var seconds: Double
    var objective: Double?
    switch options.solver {
    case .sgd:
        var o = options.sgd
        o.classWeight = options.classWeight
        settings.merge(["lr": "\(o.learningRate)", "momentum": "\(o.momentum)", "weight_decay": "\(o.weightDecay)",
                        "batch": "\(o.batchSize)", "epochs": "\(o.epochs)", "step": "\(o.stepSize)", "gamma": "\(o.gamma)",
                        "seed": "\(o.seed)", "nesterov": "\(o.nesterov)"]) { $1 }
        let r = try SGDTrainer(options: o).train(data.train, validation: data.validation)
        head = r.bestHead
        log = formatTutorialLog(r)
        best = r.bestValidationAccuracy
        epochs = r.epochs
        seconds = r.seconds
    case .lbfgs:
        var o = options.lbfgs
        o.classWeight = options.classWeight
        settings.merge(["C": "\(o.C)", "standardize": "\(o.standardize)", "max_iterations": "\(o.maxIterations)"]) { $1 }
        let r = try LBFGSTrainer(options: o).train(data.train, validation: data.validation)
        head = r.head
        objective = r.sumObjective
        best = r.validationMetrics?.accuracy
        seconds = r.seconds
        log = "L-BFGS: \(r.iterations) iterations, \(r.evaluations) evaluations, \(r.stopReason); "
        log += String(format: "objective %.6g, gradient norm %.3g\n", r.objective, r.gradientNorm)
        log += String(format: "train Acc: %.4f Balanced: %.4f", r.trainMetrics.accuracy, r.trainMetrics.balancedAccuracy)
        if let v = r.validationMetrics {
            log += String(format: "  val Loss: %.4f Acc: %.4f Balanced: %.4f", v.loss ?? .nan, v.accuracy, v.balancedAccuracy)
        }
        log += String(format: "\nTraining complete in %.3f s\n", r.seconds)
    }
    let metrics = epochs.map { EpochJSON(epoch: $0.epoch, lr: $0.learningRate, train_loss: $0.trainLoss, train_acc: $0.trainAccuracy,
                                         val_loss: $0.validationLoss, val_acc: $0.validationAccuracy, seconds: $0.seconds) }
    if let best { settings["best_val_acc"] = String(best) }
    settings["seconds"] = String(seconds)
    let valMetrics = try data.validation.map { try evaluate(head, on: $0) }
    if options.solver == .sgd, let v = valMetrics {
        log += String(format: "Saved head on val: Acc: %.4f Balanced: %.4f\n", v.accuracy, v.balancedAccuracy)
    }
    var calibration: CalibrationResult?
    if options.calibrate {
        guard let v = data.validation else {
            throw WorkflowError.noFeatures("--calibrate fits the temperature on the '\(options.validationSplit)' split, which the store lacks")
        }
        let c = try calibrate(head, on: v)
        calibration = c
        log += String(format: "Temperature scaling on val: T = %.4f, ECE %.4f -> %.4f, NLL %.4f -> %.4f\n",
                      c.temperature, c.eceBefore, c.eceAfter, c.nllBefore, c.nllAfter)
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let record = HeadRecord(name: options.name, backboneID: backbone.id, classes: data.classNames,
                            settingsJSON: String(decoding: try encoder.encode(settings), as: UTF8.self),
                            metricsJSON: String(decoding: try encoder.encode(metrics), as: UTF8.self),
                            weights: head.weight + head.bias, created: HeadRecord.now(), temperature: calibration?.temperature)
    try store.saveHead(record)
    return TrainedHead(record: record, head: head, classNames: data.classNames, log: log, bestValidationAccuracy: best,
                       epochs: epochs, trainingSeconds: seconds, datasets: data, validationMetrics: valMetrics,
                       calibration: calibration, objective: objective)
}

extension HeadRecord {
    /// How long training took (its settings' "seconds"; heads saved before it was recorded: the sum
    /// of their epochs' seconds; nil when neither is there).
    public var trainingSeconds: Double? {
        if let data = settingsJSON.data(using: .utf8),
           let settings = try? JSONDecoder().decode([String: String].self, from: data),
           let s = settings["seconds"].flatMap(Double.init) { return s }
        if let data = metricsJSON.data(using: .utf8), let epochs = try? JSONDecoder().decode([EpochJSON].self, from: data),
           !epochs.isEmpty { return epochs.reduce(0) { $0 + $1.seconds } }
        return nil
    }
}

/// A stored head, ready to use, with its backbone.
public struct LoadedHead: Sendable {
    public var record: HeadRecord
    public var head: LinearHead
    public var backbone: StoredBackbone
}

/// Loads the head called `name` from the store.
public func loadHead(store: FeatureStore, name: String) throws -> LoadedHead {
    guard let record = try store.loadHead(name: name) else {
        throw WorkflowError.unknownHead(name, available: try store.heads().map(\.name))
    }
    guard let backbone = try store.backbone(id: record.backboneID) else {
        throw WorkflowError.backboneMismatch("head \(name) refers to a backbone that is not in the store")
    }
    let c = record.classes.count, d = backbone.dimension
    guard record.weights.count == c * d + c else {
        throw WorkflowError.backboneMismatch("head \(name) has \(record.weights.count) weights, expected \(c * d + c)")
    }
    let head = try LinearHead(classes: c, dimension: d, weight: Array(record.weights[0..<(c * d)]),
                              bias: Array(record.weights[(c * d)...]))
    return LoadedHead(record: record, head: head, backbone: backbone)
}

/// Export formats of a head.
public enum HeadExportFormat: String, Sendable, CaseIterable {
    /// PyTorch zip (torch.save of a state_dict {weight, bias}): `nn.Linear(d, classes).load_state_dict(torch.load(f))`.
    case pth
    /// safetensors with tensors `weight` and `bias`, class names in the metadata.
    case safetensors
}

/// The default file name of `probe heads export NAME`: NAME.pth / NAME.safetensors in the current
/// directory whatever the head is called (`OutputFile.safeFileName`: no '/', no '..', no hidden
/// file): "../../x" -> "____x.pth", "/abs/x" -> "_abs_x.pth".
public func defaultHeadExportPath(name: String, format: HeadExportFormat) -> String {
    OutputFile.safeFileName(name, empty: "head") + "." + format.rawValue
}

/// Writes a head as a file PyTorch loads into `nn.Linear(dimension, classes)`, atomically, never
/// over a non-regular file nor over one of `protecting` (the store it came from); "-" is
/// standard output (see NN/OutputFile.swift).
public func exportHead(_ loaded: LoadedHead, format: HeadExportFormat, to path: String, protecting: [String] = []) throws {
    let h = loaded.head
    let tensors: [(name: String, tensor: Tensor)] = [
        ("weight", Tensor(shape: [h.classes, h.dimension], data: h.weight)),
        ("bias", Tensor(shape: [h.classes], data: h.bias)),
    ]
    switch format {
    case .pth: try writeTorchZip(tensors, to: path, protecting: protecting)
    case .safetensors:
        let classes = String(decoding: try JSONEncoder().encode(loaded.record.classes), as: UTF8.self)
        try writeSafetensors(tensors, metadata: ["classes": classes, "backbone": loaded.backbone.architecture,
                                                 "backbone_weights_sha256": loaded.backbone.weightsSHA256], to: path,
                             protecting: protecting)
    }
}
