import Foundation
import Backbones
import Vision
import Store
import Extract
import Heads
import Report

/// A grid of validation images with predicted and true labels (green when right, red when wrong),
/// like the tutorial's visualize_model.
func predictionGrid(paths: [String], features: LabeledFeatures, head: LinearHead, classNames: [String],
                    count: Int) throws -> RGBImage {
    let n = min(count, paths.count)
    let step = max(1, paths.count / max(1, n))
    var tiles: [(image: RGBImage, caption: String, color: (UInt8, UInt8, UInt8))] = []
    let d = features.dimension
    for k in 0..<n {
        let i = k * step
        let p = try head.predict(Array(features.values[(i * d)..<((i + 1) * d)]), topK: 1)[0]
        let truth = features.labels[i]
        guard let image = try? ImageDecoder.decode(path: paths[i]) else { continue }
        let right = p.label == truth
        tiles.append((Transforms.resizeCenterCrop(image), "\(classNames[p.label])\(right ? "" : " (is \(classNames[truth]))")",
                      right ? (120, 230, 120) : (255, 110, 110)))
    }
    return captionedGrid(tiles, columns: 4)
}

func writeReport(options: DemoOptions, data: String, kind: Architecture, weights: String, summary: ExtractSummary,
                 trained: TrainedHead, evaluation: HeadEvaluation, loaded: LoadedHead) throws -> String {
    let dir = options.reportDirectory
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let curves = try writeTrainingCurves(trained.epochs.map {
        CurvePoint(trainLoss: $0.trainLoss, trainAccuracy: $0.trainAccuracy,
                   validationLoss: $0.validationLoss, validationAccuracy: $0.validationAccuracy)
    }, to: dir)
    var html = HTMLReport(title: "probe: ants vs bees, the transfer-learning tutorial")
    html.paragraph("Data: \(data). Backbone: \(kind.name) (frozen, weights \(weights), sha256 \(summary.weightsSHA256.prefix(16))…), "
                   + "\(kind.featureDimension)-d features cached in \(options.storePath).")
    html.heading("Feature extraction")
    html.preformatted(summary.render())
    html.heading("Head training (SGD lr 0.001, momentum 0.9, batch 4, StepLR(7, 0.1), 25 epochs)")
    if let best = trained.bestValidationAccuracy {
        html.paragraph(String(format: "Best validation accuracy: %.4f; training took %.3f s.", best, trained.trainingSeconds))
    }
    for c in curves { html.image(c, alt: c) }
    html.heading("Evaluation of the best head on the validation split")
    html.preformatted(evaluation.render())
    if let val = trained.datasets.validation {
        let grid = try predictionGrid(paths: trained.datasets.validationPaths, features: val, head: loaded.head,
                                      classNames: trained.classNames, count: 12)
        try PNGWriter.write(grid, to: dir + "/predictions.png")
        html.heading("Predictions on validation images")
        html.image("predictions.png", alt: "validation images with predicted labels")
    }
    html.heading("Training log")
    html.preformatted(trained.log)
    let path = dir + "/index.html"
    try html.render().write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
