import Foundation
import Extract
import Workflows
import Backbones

let demoBackboneOption = architectureOption(help: "One of \(Architecture.knownNames) (default: resnet18 when its weights are available, else mobilenet_v2).")

let demoCommand = Command(
    path: ["demo"],
    summary: "PyTorch's transfer-learning tutorial end to end: extract, train, evaluate, report.",
    usage: "demo [--data DIR] [--backbone NAME] [--weights PATH] [--store PATH] [--report DIR] [--finetune [--finetune-epochs 25]]",
    discussion: """
    Finds the ants-vs-bees data (--data, else data/, cache/data/ or ../shared/data/; else it
    downloads PyTorch's hymenoptera_data.zip), extracts features with ResNet-18's ImageNet weights
    (MobileNetV2's when those are not present and cannot be downloaded), trains a head with the
    tutorial's settings, evaluates it, and writes an HTML report: training curves, every
    misclassified validation image with its true label, prediction and confidence, and a 2-D map
    of the embeddings. Run it twice: the second run reuses every feature.

    With --finetune it also does the tutorial's other half, finetuning every layer of the network
    (25 epochs: minutes, not milliseconds; weights beside the store, cache/DATA-BACKBONE-finetuned.pth), and the
    report puts the finetuned network beside the head: validation accuracy and wall time.
    """,
    options: [
        Option("--data", "DIR", "The hymenoptera_data folder (train/ and val/)."),
        demoBackboneOption.option,
        Option("--weights", "PATH", "Weights of the backbone."),
        Option("--seed", "N", "Seed of the head's initialisation and shuffling (default 0)."),
        storeOption,
        Option("--report", "DIR", "Where the report goes (default cache/report)."),
        Option("--finetune", nil, "Also finetune the whole network and compare it with the head."),
        Option("--finetune-epochs", "N", "Epochs of --finetune (default 25, the tutorial's)."),
        Option("--quiet", nil, "No progress bar."),
        threadsOption,
    ],
    run: { args in
        _ = try args.positionals(min: 0, max: 0, what: "")
        var o = DemoOptions()
        o.dataPath = args.string("--data")
        if let backbone = try args.given(demoBackboneOption) { o.backbone = backbone }
        o.weightsPath = args.string("--weights")
        o.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        o.storePath = storePath(args)
        if let r = args.string("--report") { o.reportDirectory = r }
        o.finetune = args.flag("--finetune")
        o.finetuneEpochs = try args.int("--finetune-epochs", default: 25, range: 1...10_000)
        let bar = ProgressBar("extract", total: 0, quiet: args.flag("--quiet"))
        let result = try runDemo(o, log: { print($0) }, progress: { done, total in bar.update(done, total: total) })
        bar.finish()
        print()
        print(result.trained.log, terminator: "")
        print(result.evaluation.render(), terminator: "")
        if let f = result.finetuned {
            print(String(format: "\nhead over cached features: best val acc %.4f, %.3f s training (+ %.1f s extraction); finetuned network: %.4f, %.1f s",
                         result.trained.bestValidationAccuracy ?? .nan, result.trained.trainingSeconds, result.extraction.seconds,
                         f.bestValidationAccuracy ?? .nan, f.seconds))
        }
        print("\nreport: \(result.reportPath)")
        return 0
    }
)
