import Foundation
import Audit
import Finetune
import Heads
import Report
import Store

/// Settings of `probe report`.
public struct ReportOptions: Sendable {
    public var storePath = FeatureStore.defaultPath
    /// Where index.html and its images go.
    public var directory = "cache/report"
    /// The head to show; nil: the head named "tutorial" when the store has one, else the
    /// tutorial's SGD head trained now in memory (not saved).
    public var headName: String?
    /// Which backbone's features when no head is named (as `probe train --backbone`).
    public var backbone: String?
    /// Weights written by `probe finetune`: the run (its OUT-summary.json) is shown beside the head.
    public var finetunedWeights: String?
    public var seed: UInt64 = 0
    /// Run the data audit (`probe audit`) and show its findings.
    public var audit = true
    /// Run the evaluation protocols (`probe eval`: linear probe, k-NN, few-shot, calibration).
    public var protocols = true
    public init() {}
}

/// What `writeProbeReport` wrote and found.
public struct ReportResult: Sendable {
    public var path: String
    public var headName: String
    public var validationAccuracy: Double?
    public var misclassified: [Misclassification]
    public var finetuned: FinetuneSummary?
    public var audit: AuditResult?
    public var protocols: EvalProtocolReport?
}

/// A report over the store's cached features: the head's validation errors with their images,
/// its evaluation, a 2-D map of the embeddings, the head and a finetuned network side by side
/// (given a finetuning run), the evaluation protocols and the data audit.
public func writeProbeReport(_ o: ReportOptions) throws -> ReportResult {
    let store = try FeatureStore(path: o.storePath, readOnly: true)
    var loaded: LoadedHead? = nil
    if let name = o.headName {
        loaded = try loadHead(store: store, name: name)
    } else if try store.loadHead(name: "tutorial") != nil {
        loaded = try loadHead(store: store, name: "tutorial")
    }
    let backbone = try loaded?.backbone ?? store.selectBackbone(o.backbone)
    let data = try loadHeadDatasets(store: store, backbone: backbone, useViews: false)
    guard let validation = data.validation else {
        throw WorkflowError.noFeatures("the store has no validation split of \(backbone.architecture) features: a report needs DIR/val (extract DIR with train/ and val/ folders)")
    }
    let head: LinearHead, headName: String, headSeconds: Double?
    var note = ""
    if let loaded {
        guard loaded.record.classes == data.classNames else {
            throw WorkflowError.backboneMismatch("head '\(loaded.record.name)' has classes \(loaded.record.classes), the store's train split \(data.classNames): train the head again")
        }
        head = loaded.head
        headName = loaded.record.name
        headSeconds = loaded.record.trainingSeconds
    } else {
        let r = try SGDTrainer(options: .tutorial(seed: o.seed)).train(data.train, validation: validation)
        head = r.bestHead
        headName = "tutorial (trained for this report, not saved)"
        headSeconds = r.seconds
        note = "No head named; the tutorial's head (SGD lr 0.001, momentum 0.9, batch 4, StepLR(7, 0.1), 25 epochs, seed \(o.seed)) was trained for this report and not saved. "
    }
    let evaluation = try evaluate(head, on: validation)
    let finetuned = try o.finetunedWeights.flatMap { try FinetuneSummary.read(forWeights: $0) }

    var page = try ReportPage(directory: o.directory, title: "probe report: \(backbone.architecture) features of \(o.storePath)")
    page.html.paragraph(note + "Store \(o.storePath): \(data.train.count) training and \(validation.count) validation images, "
                        + "\(data.classNames.count) classes (\(data.classNames.joined(separator: ", "))), "
                        + "\(backbone.dimension)-d \(backbone.architecture) features (weights sha256 \(backbone.weightsSHA256.prefix(16))…).")
    page.html.heading("Head '\(headName)' on the validation split")
    page.html.preformatted(HeadEvaluation(split: "val", classNames: data.classNames, metrics: evaluation).render())
    let errors = try page.addErrorsAndMap(head: head, train: data.train, validation: validation,
                                          validationPaths: data.validationPaths, classNames: data.classNames)
    page.addComparison(head: (headName, evaluation.accuracy, headSeconds, nil), architecture: backbone.architecture, finetuned: finetuned, finetunedPath: o.finetunedWeights)
    let protocols = o.protocols ? try runEvalProtocols(train: data.train, validation: validation, classNames: data.classNames) : nil
    if let protocols { page.addProtocols(protocols) }
    let audit = o.audit ? try auditStore(store, backbone: backbone) : nil
    if let audit { try page.addAudit(audit) }
    return ReportResult(path: try page.finish(), headName: headName, validationAccuracy: evaluation.accuracy,
                        misclassified: errors, finetuned: finetuned, audit: audit, protocols: protocols)
}
