import Foundation
import Testing
import NN
import Vision
import Weights
import Backbones
@testable import Finetune
import TestSupport

/// A tiny two-class data set (train 6 + val 3 images per class) of PNGs made here: class 0 reddish
/// with a bright square on the left, class 1 bluish with it on the right; plus one undecodable file.
func makeTinyDataset() throws -> String {
    let root = temporaryDirectory("data")
    var seed: UInt64 = 99
    func rnd() -> Int { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Int(seed >> 57) }
    for split in ["train", "val"] {
        for (label, cls) in ["ants", "bees"].enumerated() {
            let dir = "\(root)/\(split)/\(cls)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for i in 0..<(split == "train" ? 6 : 3) {
                let w = 40 + rnd() % 20, h = 36 + rnd() % 16
                var px = [UInt8](repeating: 0, count: w * h * 3)
                for y in 0..<h { for x in 0..<w {
                    let o = (y * w + x) * 3
                    let inSquare = (label == 0 ? x < w / 2 : x >= w / 2) && y > h / 4 && y < 3 * h / 4
                    px[o] = UInt8(clamping: (label == 0 ? 160 : 60) + rnd() + (inSquare ? 80 : 0))
                    px[o + 1] = UInt8(clamping: 90 + rnd())
                    px[o + 2] = UInt8(clamping: (label == 0 ? 60 : 160) + rnd() + (inSquare ? 80 : 0))
                } }
                try PNGWriter.write(RGBImage(width: w, height: h, pixels: px), to: "\(dir)/img\(i).png")
            }
        }
    }
    try Data("not an image".utf8).write(to: URL(fileURLWithPath: "\(root)/train/bees/broken.jpg"))
    return root
}

func tinyOptions(_ arch: Architecture, out: String) -> FinetuneOptions {
    var o = FinetuneOptions(outputPath: out)
    o.architecture = arch
    o.epochs = 2
    o.batchSize = 4
    o.learningRate = 0.01
    o.stepSize = 1
    o.seed = 7
    o.imageSize = 32
    return o
}

@Suite(.serialized) struct FinetuneRunTests {
    /// A run killed after its first epoch and resumed ends with the same weights, metrics and
    /// checkpoint as an uninterrupted run (the checkpoints compared where both runs are killed
    /// after their last epoch, before the final write; a finished run removes its checkpoint).
    @Test(arguments: [Architecture.resnet18, .mobilenetV2])
    func resumeReproducesUninterruptedRun(_ arch: Architecture) throws {
        let data = try makeTinyDataset()
        let dir = temporaryDirectory("run")
        defer { try? FileManager.default.removeItem(atPath: data); try? FileManager.default.removeItem(atPath: dir) }
        var lines: [String] = []
        let full = try finetune(dataset: data, options: tinyOptions(arch, out: dir + "/full.pth"), log: { lines.append($0) })
        #expect(full.epochs.count == 2)
        #expect(full.skipped.count == 1 && full.skipped[0].contains("broken.jpg"))
        #expect(lines.first == "Epoch 0/1" && lines[1] == "----------" && lines[2].hasPrefix("train Loss: ") && lines[3].hasPrefix("val Loss: "))
        #expect(lines.last!.hasPrefix("Best val Acc: "))
        #expect(full.epochs.allSatisfy { $0.trainImages == 12 })
        #expect(full.epochs[1].learningRate < full.epochs[0].learningRate)
        #expect(!FileManager.default.fileExists(atPath: dir + "/full.pth.checkpoint"))
        // The summary beside the weights says what the run did (for `probe report --finetuned`).
        let summary = try #require(try FinetuneSummary.read(forWeights: dir + "/full.pth"))
        #expect(FinetuneSummary.path(forWeights: dir + "/full.pth") == dir + "/full-summary.json")
        #expect(summary.epochs == full.epochs && summary.bestValidationAccuracy == full.bestValidationAccuracy)
        #expect(summary.bestEpoch == full.bestEpoch && summary.seconds == full.seconds && summary.classes == ["ants", "bees"])
        #expect(summary.architecture == arch.name && summary.dataset == data && summary.weights == dir + "/full.pth")

        // The uninterrupted run's state after its last epoch: killed before the final write.
        var u = tinyOptions(arch, out: dir + "/uninterrupted.pth")
        u.stopAfterEpochs = 2
        let killedAtEnd = try finetune(dataset: data, options: u, log: { _ in })
        #expect(killedAtEnd.outputPath == nil && !FileManager.default.fileExists(atPath: dir + "/uninterrupted.pth"))

        var o = tinyOptions(arch, out: dir + "/resumed.pth")
        o.stopAfterEpochs = 1
        let first = try finetune(dataset: data, options: o, log: { _ in })
        #expect(first.outputPath == nil && first.epochs.count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/resumed.pth"))
        o.resume = true
        var resumedLines: [String] = []
        _ = try finetune(dataset: data, options: o, log: { resumedLines.append($0) })   // epoch 1, then killed
        #expect(resumedLines.first == "Resuming from \(dir)/resumed.pth.checkpoint at epoch 1")
        // the checkpoints agree (parameters, momentum, running statistics)
        let c1 = try Checkpoint.read(path: dir + "/uninterrupted.pth.checkpoint", expect: u,
                                     classes: ["ants", "bees"], parameterCount: nil, bufferCount: nil)
        let c2 = try Checkpoint.read(path: dir + "/resumed.pth.checkpoint", expect: o, classes: ["ants", "bees"], parameterCount: nil, bufferCount: nil)
        #expect(c1.parameters == c2.parameters && c1.momentum == c2.momentum && c1.buffers == c2.buffers)
        #expect(c1.bestParameters == c2.bestParameters && c1.bestBuffers == c2.bestBuffers)
        #expect(c1.header.state.nextEpoch == 2 && c1.header.batchesTracked == c2.header.batchesTracked)
        #expect(c1.momentum.count == c1.parameters.count && c1.header.hasMomentum)

        o.stopAfterEpochs = nil
        let resumed = try finetune(dataset: data, options: o, log: { _ in })   // nothing left to train: writes
        #expect(resumed.epochs.count == 2)
        for (a, b) in zip(full.epochs, resumed.epochs) {
            #expect(a.trainLoss == b.trainLoss && a.trainAccuracy == b.trainAccuracy)
            #expect(a.validationLoss == b.validationLoss && a.validationAccuracy == b.validationAccuracy)
        }
        #expect(full.bestEpoch == resumed.bestEpoch && full.bestValidationAccuracy == resumed.bestValidationAccuracy)
        let x = try loadStateDict(path: dir + "/full.pth"), y = try loadStateDict(path: dir + "/resumed.pth")
        #expect(x.names == y.names)
        for t in x.tensors { #expect(t.values == y[t.name]!.values, "\(t.name) differs after resume") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/resumed.pth.checkpoint"))
    }

    /// The written file is a torchvision state_dict: names and order of torchvision's, `fc` /
    /// `classifier.1` with one output per class, int64 num_batches_tracked; it loads as a backbone.
    @Test(arguments: [Architecture.resnet18, .mobilenetV2])
    func exportedWeightsAreTorchvisionStateDicts(_ arch: Architecture) throws {
        let data = try makeTinyDataset()
        let dir = temporaryDirectory("export")
        defer { try? FileManager.default.removeItem(atPath: data); try? FileManager.default.removeItem(atPath: dir) }
        var o = tinyOptions(arch, out: dir + "/w.pth")
        o.epochs = 1
        _ = try finetune(dataset: data, options: o, log: { _ in })
        let sd = try loadStateDict(path: dir + "/w.pth")
        #expect(sd.format == .pthZip)
        #expect(sd.tensors.count == (arch == .resnet18 ? 122 : 314))
        let last = arch.classifier
        #expect(sd[last + ".weight"]?.shape == [2, arch == .resnet18 ? 512 : 1280])
        #expect(sd[last + ".bias"]?.shape == [2])
        let tracked = sd.tensors.filter { $0.name.hasSuffix("num_batches_tracked") }
        // one count per training batch that had images: 13 files (one broken) in batches of 4
        let counts = Set(tracked.compactMap { $0.int64Values?.first })
        #expect(tracked.count == (arch == .resnet18 ? 20 : 52) && tracked.allSatisfy { $0.dtype == .int64 })
        #expect(counts.count == 1 && (counts.first == 3 || counts.first == 4))
        if arch == .resnet18 {
            #expect(sd.names.prefix(7) == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight"])
            let i = sd.names.firstIndex(of: "layer2.0.bn2.num_batches_tracked")!
            #expect(sd.names[i + 1] == "layer2.0.downsample.0.weight")
            let b = try FoldedNetwork(.resnet18, weights: sd.asSource)
            #expect(b.classCount == 2)
        } else {
            #expect(sd.names.prefix(8) == ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias", "features.0.1.running_mean",
                                           "features.0.1.running_var", "features.0.1.num_batches_tracked", "features.1.conv.0.0.weight", "features.1.conv.0.1.weight"])
            let b = try FoldedNetwork(.mobilenetV2, weights: sd.asSource)
            #expect(b.keyScheme == "torchvision")
        }
    }

    @Test func resumeRefusesOtherSettings() throws {
        let data = try makeTinyDataset()
        let dir = temporaryDirectory("refuse")
        defer { try? FileManager.default.removeItem(atPath: data); try? FileManager.default.removeItem(atPath: dir) }
        var o = tinyOptions(.resnet18, out: dir + "/w.pth")
        o.stopAfterEpochs = 1
        _ = try finetune(dataset: data, options: o, log: { _ in })
        o.resume = true
        o.seed = 8
        #expect(throws: FinetuneError.self) { _ = try finetune(dataset: data, options: o, log: { _ in }) }
        // a truncated checkpoint is an error that says what to do, not a crash
        let path = o.resolvedCheckpointPath
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        o.seed = 7
        do { _ = try finetune(dataset: data, options: o, log: { _ in }); Issue.record("truncated checkpoint accepted") } catch let e as FinetuneError {
            #expect(e.description.contains("truncated"))
        }
    }
}

extension StateDict {
    /// The state dict as a backbone tensor source.
    var asSource: [String: Tensor] {
        var d: [String: Tensor] = [:]
        for t in tensors { d[t.name] = t.tensor }
        return d
    }
}
