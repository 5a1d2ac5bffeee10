import Foundation
import Audit
import Finetune
import Heads
import OutputFiles
import Report
import Store
import Vision

// The sections that `probe report` and `probe demo` share: the validation errors with their
// images, a 2-D map of the embeddings, and the cached-feature head beside a finetuned network.

/// A report being written into a directory: the page and the image files beside it. Only files
/// probe wrote there are replaced (`OwnedFolder`, manifest `.probe-report`).
struct ReportPage {
    var folder: OwnedFolder
    var html: HTMLReport
    var directory: String { folder.directory }

    init(directory: String, title: String) throws {
        folder = try OwnedFolder(directory, manifest: ".probe-report", header: "# files written by probe report / probe demo (the rest of this folder is never touched)")
        try folder.claim(["index.html"])
        html = HTMLReport(title: title)
    }

    /// Writes an image beside the page (atomically) and returns its relative path.
    mutating func writeImage(_ img: RGBImage, name: String) throws -> String {
        let sub = (name as NSString).deletingLastPathComponent
        if !sub.isEmpty { try folder.claim([sub]) }
        try folder.claim([name])
        if !sub.isEmpty { try FileManager.default.createDirectory(atPath: directory + "/" + sub, withIntermediateDirectories: true) }
        try writeFileAtomically(try PNGWriter.encode(img), to: directory + "/" + name)
        return name
    }

    /// Writes index.html atomically and returns its path.
    func finish() throws -> String {
        let path = directory + "/index.html"
        try writeFileAtomically(Array(html.render().utf8), to: path)
        return path
    }
}

/// One validation image the head gets wrong.
public struct Misclassification: Sendable, Codable, Equatable {
    public var path: String
    public var label: String
    public var predicted: String
    /// The head's probability of the predicted class.
    public var confidence: Double
}

/// The validation rows a head gets wrong (their row numbers, and the errors most confident first).
func misclassifications(head: LinearHead, validation: LabeledFeatures, paths: [String],
                        classNames: [String]) throws -> (rows: Set<Int>, errors: [Misclassification]) {
    let p = try head.probabilities(validation.values, rows: validation.count)
    let c = head.classes
    var rows = Set<Int>()
    var out: [Misclassification] = []
    for i in 0..<validation.count {
        var best = 0
        for k in 1..<c where p[i * c + k] > p[i * c + best] { best = k }
        if best != validation.labels[i] {
            rows.insert(i)
            out.append(Misclassification(path: paths[i], label: classNames[validation.labels[i]], predicted: classNames[best],
                                         confidence: Double(p[i * c + best])))
        }
    }
    return (rows, out.sorted { ($0.confidence, $1.path) > ($1.confidence, $0.path) })
}

/// A square thumbnail of an image file (shorter side resized, centre crop), nil when it cannot be decoded.
func thumbnail(_ path: String, size: Int = 160) -> RGBImage? {
    guard let image = try? ImageDecoder.decode(path: path) else { return nil }
    return Transforms.resizeCenterCrop(image, resize: size, crop: size)
}

extension ReportPage {
    /// The head's validation errors with their images, then the map of the embeddings with those
    /// errors ringed. Returns the errors.
    mutating func addErrorsAndMap(head: LinearHead, train: LabeledFeatures, validation: LabeledFeatures,
                                  validationPaths: [String], classNames: [String]) throws -> [Misclassification] {
        let wrong = try misclassifications(head: head, validation: validation, paths: validationPaths, classNames: classNames)
        try addErrors(wrong.errors, validationCount: validation.count)
        try addMap(train: train, validation: validation, wrong: wrong.rows, classNames: classNames)
        return wrong.errors
    }

    /// "Validation errors": every misclassified validation image (up to `limit`) with its true
    /// label, the prediction and the head's confidence.
    mutating func addErrors(_ errors: [Misclassification], validationCount: Int, limit: Int = 60) throws {
        html.heading("Validation errors: \(errors.count) of \(validationCount) images")
        guard !errors.isEmpty else {
            try folder.removeUnused(under: "errors/", keep: [])
            html.paragraph("The head classifies every validation image correctly.")
            return
        }
        html.paragraph("Each image the head gets wrong, most confident mistakes first: true label, prediction, and the probability the head gives its prediction.")
        var items: [(src: String, caption: String, flagged: Bool)] = []
        defer { try? folder.removeUnused(under: "errors/", keep: Set(items.map(\.src))) }   // thumbnails of an earlier run
        for (i, e) in errors.prefix(limit).enumerated() {
            let caption = "true \(e.label), predicted \(e.predicted) (\(String(format: "%.2f", e.confidence))) \((e.path as NSString).lastPathComponent)"
            if let t = thumbnail(e.path) {
                items.append((try writeImage(t, name: String(format: "errors/%03d.png", i)), caption, true))
            } else {
                html.paragraph("\(e.path): cannot be decoded now (\(caption))")
            }
        }
        html.gallery(items)
        if errors.count > limit { html.paragraph("… and \(errors.count - limit) more (probe eval --head NAME --json lists them all).") }
    }

    /// "Map of the embeddings": training and validation vectors on their first two principal
    /// components, coloured by class, misclassified validation images ringed.
    mutating func addMap(train: LabeledFeatures, validation: LabeledFeatures?, wrong: Set<Int>, classNames: [String]) throws {
        let d = train.dimension
        var values: [Float] = []
        values.reserveCapacity((train.count + (validation?.count ?? 0)) * d)
        for i in 0..<train.count {   // view 0 of every training image
            let o = i * train.views * d
            values += train.values[o..<(o + d)]
        }
        if let validation { values += validation.values }
        let rows = values.count / d
        let pca = try principalComponents(values, rows: rows, dimension: d, components: 2)
        var points: [ScatterPoint] = []
        for r in 0..<rows {
            let isVal = r >= train.count
            let label = isVal ? validation!.labels[r - train.count] : train.labels[r]
            points.append(ScatterPoint(x: pca.projections[r * 2], y: pca.projections[r * 2 + 1], group: label,
                                       marked: isVal && wrong.contains(r - train.count), large: isVal))
        }
        let img = scatterPlot(title: "PCA of the features", points: points, groups: classNames,
                              xLabel: String(format: "PC1 (%.1f%% of the variance)", 100 * pca.explained(0)),
                              yLabel: String(format: "PC2 (%.1f%%)", 100 * pca.explained(1)))
        html.heading("Map of the embeddings")
        html.paragraph("Every image's \(d)-d feature vector projected on the first two principal components "
                       + "(\(String(format: "%.1f", 100 * (pca.explained(0) + pca.explained(1))))% of the variance): "
                       + "validation images large, training images small and pale, misclassified validation images ringed.")
        html.image(try writeImage(img, name: "map.png"), alt: "2-D PCA map of the embeddings coloured by class")
    }

    /// The tutorial's own question: a head over cached features or the finetuned network?
    mutating func addComparison(head: (name: String, accuracy: Double?, seconds: Double?, extractSeconds: Double?),
                                architecture: String, finetuned: FinetuneSummary?, finetunedPath: String?) {
        html.heading("Cached-feature head vs finetuned network")
        func pct(_ a: Double?) -> String { a.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a" }
        func secs(_ s: Double) -> String { s < 1 ? String(format: "%.0f ms", s * 1000) : String(format: "%.1f s", s) }
        var headTime = "training " + (head.seconds.map(secs) ?? "n/a")
        if let e = head.extractSeconds { headTime += " + extraction " + secs(e) }
        var rows = [["head '\(head.name)' over cached features", pct(head.accuracy), headTime]]
        if let f = finetuned {
            rows.append(["finetuned \(f.architecture) (\(f.epochs.count) epochs, \((f.weights as NSString).lastPathComponent))",
                         pct(f.bestValidationAccuracy), secs(f.seconds)])
        }
        html.table(header: ["model", "best validation accuracy", "wall time"], rows: rows)
        if finetuned == nil {
            if let p = finetunedPath {
                html.paragraph("No finetuning summary beside \(p) (\(FinetuneSummary.path(forWeights: p))): it is written by `probe finetune`.")
            } else {
                html.paragraph("To compare with finetuning every layer: `probe finetune DIR`, then `probe report --finetuned DIR-\(architecture)-finetuned.pth` (or `probe demo --finetune`).")
            }
        }
    }

    /// The data audit (`probe audit`): its full page in `audit/`, its counts and first findings here.
    mutating func addAudit(_ result: AuditResult, top: Int = 8) throws {
        try folder.claim(["audit"])
        _ = try writeAuditPage(result, to: directory + "/audit", perSection: 40)
        html.heading("Data audit")
        let c = result.counts
        html.paragraph("\(c.samples) samples, \(c.images) distinct images: exact and near duplicates (cosine >= \(result.options.nearDuplicateThreshold)), "
                       + "train/val leakage, outliers, and likely label errors from \(result.labelSummary?.folds ?? result.options.folds)-fold "
                       + "out-of-fold probabilities (confident learning).")
        html.table(header: ["finding", "count"], rows: result.countRows())
        func thumb(_ s: AuditSample) -> String? {
            let name = "audit/audit-thumbnails/" + String(s.sha256.prefix(16)) + ".png"
            return FileManager.default.fileExists(atPath: directory + "/" + name) ? name : nil
        }
        let issues = result.labelIssues.prefix(top).compactMap { i in
            thumb(i.sample).map { ($0, String(format: "#%d labelled %@, p %.3g; suggested %@", i.rank, i.sample.label, i.givenProbability, i.suggested), true) }
        }
        if !issues.isEmpty {
            html.paragraph("The \(issues.count) most likely label errors:")
            html.gallery(issues)
        }
        let leaks = result.nearDuplicates.filter(\.crossSplit).prefix(top)
        for p in leaks {
            let items = [p.first, p.second].compactMap { s in thumb(s).map { ($0, "\(s.split ?? "-")/\(s.label) \((s.path as NSString).lastPathComponent)", true) } }
            html.paragraph(String(format: "Leak: cosine %.4f between a %@ and a %@ image", p.similarity, p.first.split ?? "-", p.second.split ?? "-"))
            html.gallery(items)
        }
        let outliers = result.outliers.prefix(top).compactMap { o in
            thumb(o.sample).map { ($0, String(format: "#%d %@/%@, mean distance %.3f", o.rank, o.sample.split ?? "-", o.sample.label, o.meanDistance), false) }
        }
        if !outliers.isEmpty {
            html.paragraph("The \(outliers.count) strongest outliers:")
            html.gallery(outliers)
        }
        html.link("audit/index.html", "The whole audit: every finding with its images")
    }

    /// The standard evaluation protocols (`probe eval`) as one table.
    mutating func addProtocols(_ r: EvalProtocolReport) {
        html.heading("Evaluation protocols")
        func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
        func secs(_ p: EvalProtocol) -> String { r.seconds[p.rawValue].map { String(format: "%.2f s", $0) } ?? "" }
        var rows: [[String]] = []
        if let l = r.linear {
            rows.append(["linear probe (L-BFGS, C \(shortNumber(l.C)) chosen of \(l.sweep.count) on \(l.holdout_images) held-out train images)",
                         pct(l.accuracy), pct(l.balanced_accuracy), secs(.linear)])
        }
        for (i, k) in (r.knn ?? []).enumerated() {
            rows.append(["k-NN, k \(k.k) (cosine, votes exp(s / \(shortNumber(r.knn_temperature ?? 0.07))))", pct(k.accuracy), pct(k.balanced_accuracy),
                         i == 0 ? secs(.knn) : ""])
        }
        for (i, f) in (r.fewshot ?? []).enumerated() {
            rows.append(["\(f.shots)-shot, linear (C \(shortNumber(r.fewshot_C ?? 1))), \(r.fewshot_draws ?? 0) draws",
                         pct(f.linear_accuracy_mean) + " ± " + pct(f.linear_accuracy_std), "", i == 0 ? secs(.fewshot) : ""])
            rows.append(["\(f.shots)-shot, k-NN (k \(f.knn_k))", pct(f.knn_accuracy_mean) + " ± " + pct(f.knn_accuracy_std), "", ""])
        }
        html.paragraph("On the validation split (\(r.val_images) images), from the cached features of \(r.train_images) training images.")
        html.table(header: ["protocol", "val top-1", "balanced accuracy", "time"], rows: rows)
        if let c = r.calibration {
            html.paragraph(String(format: "Calibration (temperature scaling of the linear probe, fitted on val): T %.3f; expected calibration error (%d bins) %.4f -> %.4f; NLL %.4f -> %.4f.",
                                  c.temperature, c.bins, c.eceBefore, c.eceAfter, c.nllBefore, c.nllAfter))
        }
    }
}
