import Foundation
import Audit
import Backbones
import Finetune
import Vision
import Store
import Extract
import Heads
import Report

/// The demo's report: extraction, the head's training curves and evaluation, its validation
/// errors with their images, a map of the embeddings, and (with `--finetune`) the finetuned
/// network beside the head.
func writeReport(options: DemoOptions, data: String, kind: Architecture, weights: String, summary: ExtractSummary,
                 trained: TrainedHead, evaluation: HeadEvaluation, loaded: LoadedHead,
                 finetuned: FinetuneSummary?, protocols: EvalProtocolReport?, audit: AuditResult?) throws -> String {
    var page = try ReportPage(directory: options.reportDirectory, title: "probe: ants vs bees, the transfer-learning tutorial")
    page.html.paragraph("Data: \(data). Backbone: \(kind.name) (frozen, weights \(weights), sha256 \(summary.weightsSHA256.prefix(16))…), "
                        + "\(kind.featureDimension)-d features cached in \(options.storePath).")
    page.html.heading("Feature extraction")
    page.html.preformatted(summary.render())
    page.html.heading("Head training (SGD lr 0.001, momentum 0.9, batch 4, StepLR(7, 0.1), 25 epochs)")
    if let best = trained.bestValidationAccuracy {
        page.html.paragraph(String(format: "Best validation accuracy: %.4f; training took %.3f s.", best, trained.trainingSeconds))
    }
    let curves = [
        lineChart(title: "loss", series: [
            Series(name: "train", values: trained.epochs.map(\.trainLoss), color: categoricalColors[0]),
            Series(name: "val", values: trained.epochs.map { $0.validationLoss ?? .nan }, color: categoricalColors[1]),
        ]),
        lineChart(title: "accuracy", series: [
            Series(name: "train", values: trained.epochs.map(\.trainAccuracy), color: categoricalColors[0]),
            Series(name: "val", values: trained.epochs.map { $0.validationAccuracy ?? .nan }, color: categoricalColors[1]),
        ]),
    ]
    for (c, name) in zip(curves, ["loss.png", "accuracy.png"]) { page.html.image(try page.writeImage(c, name: name), alt: name) }
    page.html.heading("Evaluation of the best head on the validation split")
    page.html.preformatted(evaluation.render())
    if let val = trained.datasets.validation {
        _ = try page.addErrorsAndMap(head: loaded.head, train: trained.datasets.train, validation: val,
                                     validationPaths: trained.datasets.validationPaths, classNames: trained.classNames)
    }
    page.addComparison(head: (options.headName, trained.bestValidationAccuracy, trained.trainingSeconds, summary.seconds),
                       architecture: kind.name, finetuned: finetuned, finetunedPath: nil)
    if let protocols { page.addProtocols(protocols) }
    if let audit { try page.addAudit(audit) }
    page.html.heading("Training log")
    page.html.preformatted(trained.log)
    return try page.finish()
}
