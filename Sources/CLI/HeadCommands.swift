import Foundation
import Backbones
import Store
import Heads
import Workflows
import Extract
import Weights

let trainCommand = Command(
    path: ["train"],
    summary: "Train a linear head over cached features (milliseconds) and save it in the store.",
    usage: "train [--name NAME] [\(solverOption.usage)] [--epochs 25] [--lr 0.001] [--seed N] [\(classWeightOption.usage)] [--calibrate] [--backbone B] [--store PATH]",
    discussion: """
    Trains on the 'train' split (every sample when the store has no splits) and evaluates on 'val'
    every epoch. The defaults are PyTorch's transfer-learning tutorial's: SGD lr 0.001, momentum
    0.9, batch 4, reshuffled every epoch, StepLR(step 7, gamma 0.1), 25 epochs; the weights of the
    best validation accuracy are kept. With augmented views in the store (probe extract --views N),
    every epoch draws one view per training image. --solver lbfgs fits a multinomial logistic
    regression with an L2 penalty by full-batch L-BFGS (scikit-learn's objective; features
    standardised, folded back into the saved weights).

    --class-weight balanced weights every image's loss by n_images / (n_classes * images of its
    class) (scikit-learn's definition), for both solvers. --calibrate fits the head's softmax
    temperature on 'val' (temperature scaling) and saves it; `probe predict` then reports
    softmax(logits / T). The output shows accuracy and balanced accuracy (mean per-class recall).

    EXAMPLES:
      probe train --name tutorial
      probe train --name sweep-lr --lr 0.01 --epochs 50 --seed 3
      probe train --name probe-lbfgs --solver lbfgs --C 0.5
      probe train --name rare-classes --solver lbfgs --class-weight balanced --calibrate
    """,
    options: [
        Option("--name", "NAME", "Name of the head in the store (default: head); an existing head of that name is replaced."),
        solverOption.option,
        Option("--epochs", "N", "SGD epochs (default 25)."),
        Option("--lr", "X", "SGD learning rate (default 0.001)."),
        Option("--momentum", "X", "SGD momentum (default 0.9)."),
        Option("--weight-decay", "X", "SGD weight decay (default 0)."),
        Option("--batch", "N", "SGD batch size (default 4)."),
        Option("--step", "N", "StepLR step in epochs (default 7; 0 keeps lr constant)."),
        Option("--gamma", "X", "StepLR factor (default 0.1)."),
        Option("--seed", "N", "Seed of initialisation, shuffling and view draws (default 0)."),
        Option("--C", "X", "L-BFGS inverse regularisation strength (default 1.0)."),
        Option("--no-standardize", nil, "L-BFGS on raw features."),
        Option("--tolerance", "X", "L-BFGS: stop when max |gradient| of the mean-scaled objective is at most X (default 1e-10)."),
        Option("--max-iterations", "N", "L-BFGS iterations at most (default 1000)."),
        Option("--no-views", nil, "Ignore augmented views; train on view 0."),
        classWeightOption.option,
        Option("--calibrate", nil, "Fit the softmax temperature on 'val' (temperature scaling) and save it with the head."),
        storeBackboneOption,
        storeOption, jsonOption, threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        var o = TrainHeadOptions(name: args.string("--name") ?? "head")
        o.solver = try args.value(solverOption)
        o.sgd.epochs = try args.int("--epochs", default: 25, range: 1...100_000)
        o.sgd.learningRate = try args.double("--lr", default: 0.001, range: 0...100)
        o.sgd.momentum = try args.double("--momentum", default: 0.9, range: 0...1)
        o.sgd.weightDecay = try args.double("--weight-decay", default: 0, range: 0...100)
        o.sgd.batchSize = try args.int("--batch", default: 4, range: 1...1_000_000)
        o.sgd.stepSize = try args.int("--step", default: 7, range: 0...100_000)
        o.sgd.gamma = try args.double("--gamma", default: 0.1, range: 0...1)
        o.sgd.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        o.lbfgs.C = try args.double("--C", default: 1.0, range: 1e-12...1e12)
        o.lbfgs.standardize = !args.flag("--no-standardize")
        o.lbfgs.gradientTolerance = try args.double("--tolerance", default: o.lbfgs.gradientTolerance, range: 0...1)
        o.lbfgs.maxIterations = try args.int("--max-iterations", default: o.lbfgs.maxIterations, range: 1...10_000_000)
        o.useViews = !args.flag("--no-views")
        o.classWeight = try args.value(classWeightOption)
        o.calibrate = args.flag("--calibrate")
        let store = try openStore(args)
        let backbone = try selectBackbone(store, args)
        let r = try trainHead(store: store, backbone: backbone, options: o)
        if args.flag("--json") {
            try printJSON(TrainJSON(name: o.name, backbone: backbone.architecture, classes: r.classNames,
                                    best_val_acc: r.bestValidationAccuracy, seconds: r.trainingSeconds,
                                    train_images: r.datasets.train.count, views: r.datasets.train.views,
                                    val_images: r.datasets.validation?.count ?? 0, val_acc: r.validationMetrics?.accuracy,
                                    val_balanced_acc: r.validationMetrics?.balancedAccuracy, class_weight: o.classWeight.rawValue,
                                    calibration: r.calibration, objective: r.objective))
        } else {
            print(r.log, terminator: "")
            print("saved head '\(o.name)' (\(backbone.architecture), classes: \(r.classNames.joined(separator: ", ")); "
                  + "\(r.datasets.train.count) training images\(r.datasets.train.views > 1 ? " x \(r.datasets.train.views) views" : ""))")
        }
        return 0
    }
)

let solverOption = ChoiceOption("--solver", "S", default: Solver.sgd)
let classWeightOption = ChoiceOption("--class-weight", "W", default: ClassWeighting.none,
                                     note: "balanced: n_images / (n_classes * images of the class), scikit-learn's definition.")

struct TrainJSON: Encodable {
    var name: String, backbone: String, classes: [String], best_val_acc: Double?, seconds: Double
    var train_images: Int, views: Int, val_images: Int
    var val_acc: Double?, val_balanced_acc: Double?, class_weight: String
    var calibration: CalibrationResult?
    /// L-BFGS: sum CE + 1/(2C) ||W||^2 at the optimum (scikit-learn's objective divided by C).
    var objective: Double?
}

let headsCommand = Command(
    path: ["heads"],
    summary: "List the heads saved in the store.",
    usage: "heads [--store PATH] [--json]",
    discussion: "Export one for PyTorch with 'probe heads export NAME \(headFormatOption.usage)'.",
    options: [storeOption, jsonOption],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        let store = try openStore(args, readOnly: true)
        let heads = try store.heads()
        if args.flag("--json") { try printJSON(heads); return 0 }
        if heads.isEmpty { print("no heads yet (train one with `probe train --name NAME`)"); return 0 }
        for h in heads {
            let settings = (try? JSONSerialization.jsonObject(with: Data(h.settingsJSON.utf8))) as? [String: String] ?? [:]
            var line = "\(h.name)  \(h.backbone.architecture) (\(h.backbone.weightsSHA256.prefix(12)))  classes: \(h.classes.joined(separator: ","))"
            line += "  solver: \(settings["solver"] ?? "?")"
            if let acc = settings["best_val_acc"].flatMap(Double.init) { line += String(format: "  best val acc: %.4f", acc) }
            if let w = settings["class_weight"], w != "none" { line += "  class weight: \(w)" }
            if let t = h.temperature { line += String(format: "  temperature: %.4f", t) }
            line += "  \(h.created)"
            print(line)
        }
        return 0
    }
)

let headsExportCommand = Command(
    path: ["heads", "export"],
    summary: "Write a head as a file PyTorch loads into nn.Linear(d, classes).",
    usage: "heads export NAME \(headFormatOption.usage) [--out PATH] [--store PATH]",
    discussion: """
    In PyTorch: head = nn.Linear(d, classes); head.load_state_dict(torch.load("NAME.pth"))
    (safetensors: safetensors.torch.load_file; class names are in the file's metadata).

    The file is written atomically (temporary file in the same directory, fsync, rename): an
    existing regular file at the path is replaced (a write-protected one is refused), and an interrupted export leaves it whole.
    Anything else at the path (device, FIFO, directory, symbolic link) and the store itself are
    refused. --out - writes to standard output. The default name is made from NAME with every
    '/', '..' and unusual character replaced by '_', so it always lands in the current directory.
    """,
    options: [
        headFormatOption.option,
        Option("--out", "PATH", "Output file, or - for standard output (default: NAME.pth or NAME.safetensors in the current directory)."),
        storeOption,
    ],
    run: { args in
        let name = try args.positionals(min: 1, max: 1, what: "head NAME")[0]
        let format = try args.value(headFormatOption)
        let store = try openStore(args, readOnly: true)
        let loaded = try loadHead(store: store, name: name)
        let out = args.string("--out") ?? defaultHeadExportPath(name: name, format: format)
        try exportHead(loaded, format: format, to: out, protecting: [store.path])
        printStatus(out == "-", "wrote \(out): nn.Linear(\(loaded.head.dimension), \(loaded.head.classes)) for \(loaded.backbone.architecture) features; classes \(loaded.record.classes.joined(separator: ", "))")
        return 0
    }
)

let headFormatOption = ChoiceOption("--format", "F", default: HeadExportFormat.pth)

let predictCommand = Command(
    path: ["predict"],
    summary: "Top classes of images with a trained head.",
    usage: "predict IMAGE... --head NAME [--top 3] [--weights PATH] [--store PATH] [--json]",
    discussion: """
    Features come from the store when an image (by content) is known; otherwise they are computed
    with the head's backbone (pass --weights when the weights are not torchvision's file in
    cache/weights/) and stored.
    """,
    options: [
        Option("--head", "NAME", "The head to use (required)."),
        Option("--top", "K", "How many classes to show (default 3)."),
        Option("--weights", "PATH", "Weights of the head's backbone, to compute features of new images."),
        storeOption, jsonOption, threadsOption,
    ],
    run: { args in
        let images = try args.positionals(min: 1, max: Int.max, what: "IMAGE")
        guard let name = args.string("--head") else { throw UsageError("probe predict: --head NAME is required (see `probe heads`)") }
        let store = try openStore(args)
        let loaded = try loadHead(store: store, name: name)
        let weights = args.string("--weights") ?? defaultWeightsIfPresent(architecture: loaded.backbone.architecture)
        let results = try predictImages(images, store: store, head: loaded, weightsPath: weights,
                                        topK: try args.int("--top", default: 3, range: 1...1000))
        if let note = notCachedNote(results.filter { !$0.stored }.map(\.path), store: store) {
            FileHandle.standardError.write(Data((note + "\n").utf8))
        }
        if args.flag("--json") { try printJSON(results); return 0 }
        for r in results {
            let top = r.top.map { String(format: "%@ %.4f", $0.label, $0.probability) }.joined(separator: "  ")
            print("\(r.path): \(top)")
        }
        return 0
    }
)

let evalCommand = Command(
    path: ["eval"],
    summary: "Evaluate a head on a split, or run the evaluation protocols (linear probe, k-NN, few-shot, calibration).",
    usage: "eval (--head NAME [--split val] [--calibrate] | [--protocols linear,knn,fewshot,calibration]) [--backbone B] [--store PATH] [--json]",
    discussion: """
    With --head: accuracy, balanced accuracy, per-class precision and recall and the confusion
    matrix of a saved head on a split; --calibrate also fits its softmax temperature on that split
    (temperature scaling) and saves it with the head (used by `probe predict`).

    Without --head: the standard protocols over the store's cached train/val features (view 0):
      linear       DINOv2's linear probe: multinomial logistic regression with an L2 penalty
                   (scikit-learn's objective; features standardised), C over 45 values log-spaced
                   from 1e-6 to 1e5, chosen on a seeded, stratified 10% of train held out, refit on all of train;
                   top-1 and balanced accuracy on val.
      knn          cosine k-NN on L2-normalised features, k in 10, 20, 100, 200 (capped at the train
                   size), votes weighted by exp(similarity / 0.07) (DINOv2's knn.py).
      fewshot      1, 2, 4, 8, 16 images per class, 5 seeded draws: mean and standard deviation of
                   the val top-1 of a linear probe at a fixed C (--fewshot-c, default 1) and of k-NN
                   (k = min(20, images drawn)).
      calibration  temperature scaling of the linear probe's head on val; expected calibration
                   error (15 equal-width bins) and NLL before and after.
    Default: all four. Nothing is saved.

    EXAMPLES:
      probe eval --head tutorial
      probe eval --head tutorial --calibrate
      probe eval
      probe eval --protocols linear,knn --json
      probe eval --protocols linear --class-weight balanced --seed 3
    """,
    options: [
        Option("--head", "NAME", "The head to evaluate (without it, the protocols run)."),
        Option("--split", "S", "With --head: the split (default val)."),
        Option("--calibrate", nil, "With --head: fit the temperature on the split and save it with the head."),
        Option("--protocols", "LIST", "Comma-separated: linear, knn, fewshot, calibration (default: all)."),
        Option("--seed", "N", "Seed of the held-out 10% and of the few-shot draws (default 0)."),
        Option("--fewshot-c", "X", "C of the few-shot linear probes (default 1, scikit-learn's default)."),
        Option("--no-standardize", nil, "Linear probes on raw features (default: standardised with train's mean and std)."),
        classWeightOption.option,
        storeBackboneOption,
        storeOption, jsonOption, threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        // Every option is parsed (usage errors, 64) before the store is opened.
        var o = EvalProtocolOptions()
        if let list = args.string("--protocols") {
            o.protocols = try list.split(separator: ",").map { name -> EvalProtocol in
                guard let p = EvalProtocol(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw UsageError("probe eval: unknown protocol '\(name)' (choose among \(EvalProtocol.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return p
            }
        }
        o.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        o.fewShotC = try args.double("--fewshot-c", default: 1.0, range: 1e-12...1e12)
        o.linear.solver.standardize = !args.flag("--no-standardize")
        o.linear.solver.classWeight = try args.value(classWeightOption)
        if let name = args.string("--head") {
            if args.string("--protocols") != nil {
                throw UsageError("probe eval: --head evaluates one head; --protocols runs the protocols without one (give one of them)")
            }
            let store = try openStore(args, readOnly: !args.flag("--calibrate"))
            let e = try evaluateHead(try loadHead(store: store, name: name), store: store, split: args.string("--split") ?? "val",
                                     calibrate: args.flag("--calibrate"))
            if args.flag("--json") {
                try printJSON(EvalJSON(split: e.split, classes: e.classNames, count: e.metrics.count, accuracy: e.metrics.accuracy,
                                       balanced_accuracy: e.metrics.balancedAccuracy,
                                       precision: e.metrics.precision, recall: e.metrics.recall, confusion: e.metrics.confusion,
                                       temperature: e.temperature, calibration: e.calibration))
            } else { print(e.render(), terminator: e.render().hasSuffix("\n") ? "" : "\n") }
            return 0
        }
        if args.flag("--calibrate") || args.string("--split") != nil {
            throw UsageError("probe eval: --calibrate and --split go with --head NAME")
        }
        let store = try openStore(args, readOnly: true)
        let backbone = try selectBackbone(store, args)
        let quiet = args.flag("--json") || !stderrIsTerminal
        let report = try runEvalProtocols(store: store, backbone: backbone, options: o, log: { if !quiet { printError($0) } })
        if args.flag("--json") { try printJSON(report) } else { print(report.render(), terminator: "") }
        return 0
    }
)

struct EvalJSON: Encodable {
    var split: String, classes: [String], count: Int, accuracy: Double, balanced_accuracy: Double
    var precision: [Double], recall: [Double], confusion: [[Int]]
    var temperature: Double?, calibration: CalibrationResult?
}

let queryCommand = Command(
    path: ["query"],
    summary: "Nearest neighbours (cosine) of images among the cached embeddings.",
    usage: "query (IMAGE... | --path P | --id N) [--k 10] [--split S] [--label L] [--backbone B] [--store PATH] [--json]",
    discussion: """
    A query is an image file (its features come from the store, or are computed with --weights),
    a sample path already in the store (--path), or an image id / sha256 prefix (--id). Several
    IMAGEs are answered together through one matrix product. The query image itself is left out.

    EXAMPLES:
      probe query photo.jpg --k 5
      probe query --path data/hymenoptera_data/val/bees/abeja.jpg --split train --label ants
      probe query --id 3f2a91 --json
    """,
    options: [
        Option("--path", "P", "A sample path recorded in the store."),
        Option("--id", "N", "An image id, or a sha256 prefix (at least 4 hex digits)."),
        Option("--k", "K", "Neighbours per query (default 10)."),
        Option("--split", "S", "Only neighbours with a sample in this split."),
        Option("--label", "L", "Only neighbours with this label."),
        Option("--weights", "PATH", "Backbone weights, to compute features of images not in the store."),
        storeBackboneOption,
        storeOption, jsonOption, threadsOption,
    ],
    run: { args in
        let images = args.positionals
        let store = try openStore(args)
        let backbone = try selectBackbone(store, args)
        var queries: [ImageFeatures] = []
        if let p = args.string("--path") { queries.append(try featuresOfSample(path: p, store: store, backbone: backbone)) }
        if let id = args.string("--id") { queries.append(try featuresOfImage(id: id, store: store, backbone: backbone)) }
        if !images.isEmpty {
            let weights = args.string("--weights") ?? defaultWeightsIfPresent(architecture: backbone.architecture)
            queries += try featuresOfImages(images, store: store, backbone: backbone, weightsPath: weights)
        }
        if let note = notCachedNote(queries.filter { !$0.stored }.map(\.path), store: store) {
            FileHandle.standardError.write(Data((note + "\n").utf8))
        }
        guard !queries.isEmpty else { throw UsageError("probe query: give an IMAGE, --path P or --id N (usage: probe \(args.command.usage))") }
        let k = try args.int("--k", default: 10, range: 1...100_000)
        let answers = try nearestNeighbours(store: store, backbone: backbone, queries: queries, k: k,
                                            split: args.string("--split"), label: args.string("--label"))
        if args.flag("--json") {
            try printJSON(zip(queries, answers).map { QueryJSON(query: $0.path, neighbours: $1) })
            return 0
        }
        for (q, rows) in zip(queries, answers) {
            print("neighbours of \(q.path):")
            if rows.isEmpty { print("  (none)") }
            for r in rows {
                print(String(format: "  %3d  %.4f  %@  %@", r.rank, r.score, (r.label ?? "-").padding(toLength: 8, withPad: " ", startingAt: 0),
                             r.path ?? r.sha256))
            }
        }
        return 0
    }
)

struct QueryJSON: Encodable {
    var query: String
    var neighbours: [NeighbourRow]
}

/// torchvision's official weight file in cache/weights/ for an architecture, when present.
func defaultWeightsIfPresent(architecture: String) -> String? {
    guard let kind = Architecture.find(architecture) else { return nil }
    return kind.weights.map { WeightSource().cachePath($0.file) }.first { FileManager.default.fileExists(atPath: $0) }
}
