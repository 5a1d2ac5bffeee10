import Benchmarks
import Foundation
import Backbones
import Finetune
import Report
import Weights
import Extract
import NN
import Parallelism


let finetuneCommand = Command(
    path: ["finetune"],
    summary: "Finetune a whole ResNet-18 / MobileNetV2 on an image folder (streaming, SGD, checkpoints).",
    usage: "finetune DIR [--weights FILE] [\(backboneOption.usage)] [--epochs 25] [--batch 4] [--lr 0.001] [--momentum 0.9] [--weight-decay 0] [--step 7] [--gamma 0.1] [--seed N] [--out FILE] [--resume]",
    discussion: """
    DIR holds train/ and val/ class folders (PyTorch's tutorial layout). Prints the tutorial's
    per-epoch lines, keeps the weights of the best validation accuracy and writes them as a
    torchvision state_dict (.pth, zip format; default DIRNAME-BACKBONE-finetuned.pth) that
    torchvision.models.resnet18(num_classes=N).load_state_dict(torch.load(f)) accepts (likewise
    mobilenet_v2), and that `probe extract --weights` uses as a backbone. Training curves are
    written beside it (OUT-loss.png, OUT-accuracy.png), and OUT-summary.json (settings, every
    epoch's metrics, best validation accuracy, wall time), which `probe report --finetuned OUT`
    shows beside a head trained on cached features.

    CHECKPOINT. OUT.checkpoint (tens of MB: weights, momentum, best weights) is written atomically
    after every epoch and removed once OUT is written whole; a run that fails or is interrupted
    keeps it, and --resume continues that run to the same result. The checkpoint records its
    settings and its data (DIR, and the relative path and size of every image): --resume refuses
    other settings, or another DIR or a DIR whose files were added, removed, renamed or resized
    since, and names both; the same files moved or copied elsewhere resume.

    Without --weights, torchvision's ImageNet file from cache/weights/ is used (downloaded and
    checked when missing).

    EXAMPLE:
      probe finetune data/hymenoptera_data --backbone mobilenet_v2 --weights mobilenetv2.pt --seed 1
      probe extract data/hymenoptera_data --backbone mobilenet_v2 --weights hymenoptera_data-mobilenet_v2-finetuned.pth
    """,
    options: [
        Option("--weights", "FILE", "Pretrained weights (.pth/.pt/.safetensors); default: torchvision's file in cache/weights/."),
        backboneOption.option,
        Option("--epochs", "N", "Epochs (default 25)."),
        Option("--batch", "N", "Batch size (default 4)."),
        Option("--lr", "X", "Learning rate (default 0.001)."),
        Option("--momentum", "X", "SGD momentum (default 0.9)."),
        Option("--weight-decay", "X", "SGD weight decay (default 0)."),
        Option("--step", "N", "StepLR step size in epochs (default 7)."),
        Option("--gamma", "X", "StepLR factor (default 0.1)."),
        Option("--seed", "N", "Seed (default 0)."),
        Option("--dropout", "P", "Dropout before the new last layer in training (default torchvision's: 0.2 for mobilenet_v2, 0 for the ResNets)."),
        Option("--out", "FILE", "Where to write the finetuned weights."),
        Option("--resume", nil, "Continue from OUT.checkpoint when it exists (same settings and data)."),
        Option("--quiet", nil, "No progress line."),
        threadsOption,
    ],
    run: { args in
        let dir = try args.positionals(min: 1, max: 1, what: "DIR")[0]
        let arch = try args.value(backboneOption)
        let base = URL(fileURLWithPath: dir).standardizedFileURL.lastPathComponent
        var o = FinetuneOptions(outputPath: args.string("--out") ?? "\(base)-\(arch.name)-finetuned.pth")
        o.architecture = arch
        o.weightsPath = try weightsPath(args, arch)
        o.epochs = try args.int("--epochs", default: 25, range: 1...100_000)
        o.batchSize = try args.int("--batch", default: 4, range: 1...4096)
        o.learningRate = Float(try args.double("--lr", default: 0.001, range: 1e-12...1e3))
        o.momentum = Float(try args.double("--momentum", default: 0.9, range: 0...0.999999))
        o.weightDecay = Float(try args.double("--weight-decay", default: 0, range: 0...10))
        o.stepSize = try args.int("--step", default: 7, range: 1...100_000)
        o.gamma = Float(try args.double("--gamma", default: 0.1, range: 0...10))
        o.seed = UInt64(try args.int("--seed", default: 0, range: 0...Int.max))
        if args.string("--dropout") != nil { o.dropout = Float(try args.double("--dropout", default: Double(arch.defaultDropout), range: 0...0.99)) }
        o.resume = args.flag("--resume")
        let quiet = args.flag("--quiet") || isatty(2) == 0
        let r = try finetune(dataset: dir, options: o, log: { print($0); fflush(nil) }, progress: quiet ? nil : { p in
            let line = String(format: "\r%@ epoch %d/%d %d/%d  loss %.4f acc %.4f  %.1f s", p.phase, p.epoch, p.epochs - 1, p.batch, p.batches,
                              p.runningLoss, p.runningAccuracy, p.seconds)
            FileHandle.standardError.write(line.data(using: .utf8)!)
            if p.batch == p.batches { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
        })
        for s in r.skipped { printError("skipped \(s)") }
        if let out = r.outputPath {
            let url = URL(fileURLWithPath: out)
            let prefix = url.deletingPathExtension().lastPathComponent + "-"
            let curves = try writeTrainingCurves(r.epochs.map {
                CurvePoint(trainLoss: $0.trainLoss, trainAccuracy: $0.trainAccuracy,
                           validationLoss: $0.validationLoss, validationAccuracy: $0.validationAccuracy)
            }, to: url.deletingLastPathComponent().path, prefix: prefix)
            print("wrote \(out), its summary \(FinetuneSummary.path(forWeights: out)) and training curves \(curves.joined(separator: ", "))")
        }
        return 0
    }
)

let benchFinetuneBackboneOption = architectureOption(help: "Only this model: one of \(Architecture.knownNames) (default: resnet18 and mobilenet_v2).")

let benchFinetuneCommand = Command(
    path: ["bench", "finetune"],
    summary: "Time full-finetuning training steps (batch 4) of any backbone (default: ResNet-18 and MobileNetV2).",
    usage: "bench finetune [DIR] [\(benchFinetuneBackboneOption.usage)] [--batch 4] [--steps 20] [--weights FILE]",
    discussion: """
    Streams the training images of DIR (default ../shared/data/hymenoptera_data) through
    RandomResizedCrop + flip like `probe finetune` and times whole SGD steps on --threads workers
    (default \(ThreadCount.available) here). Compare with python3 tools/bench_finetune_torch.py --threads N
    (same batch, augmentation and thread count). Asserts nothing.
    """,
    options: [
        benchFinetuneBackboneOption.option,
        Option("--batch", "N", "Batch size (default 4)."),
        Option("--steps", "N", "Timed steps (default 20)."),
        Option("--weights", "FILE", "Weights (default: random initialisation, same cost)."),
        Option("--profile", nil, "Also print the time per layer kind."),
        Option("--im2col", nil, "Also time 3x3 convolutions by im2col + GEMM instead of Winograd, side by side."),
        threadsOption,
    ],
    run: { args in
        let dir = try args.positionals(min: 0, max: 1, what: "").first ?? "../shared/data/hymenoptera_data"
        let only = try args.given(benchFinetuneBackboneOption)
        let batch = try args.int("--batch", default: 4, range: 1...1024)
        let steps = try args.int("--steps", default: 20, range: 1...100_000)
        print("full finetuning steps, \(ThreadCount.workersDescription)")
        print(FinetuneBenchmarkRow.header)
        let variants = args.flag("--im2col") ? [true, false] : [true]
        for a in (only.map { [$0] } ?? [.resnet18, .mobilenetV2]) {
            for winograd in variants {
                let row = try runFinetuneBenchmark(architecture: a, root: dir, weightsPath: args.string("--weights"), batch: batch,
                                                   steps: steps, profile: args.flag("--profile"), winograd: winograd)
                print(row.line + (winograd ? "" : "   (im2col)"))
                for (k, v) in row.profile.sorted(by: { $0.value > $1.value }) {
                    print(String(format: "    %-22@ %8.1f ms/step", k as NSString, v * 1000 / Double(max(1, row.steps))))
                }
                fflush(nil)
            }
        }
        return 0
    }
)
