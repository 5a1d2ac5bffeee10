import Foundation
import Testing
import Weights
@testable import Finetune
import TestSupport

/// What happens to the checkpoint: removed once the final weights are written, kept when the run
/// stops early or fails; and a resume refuses a checkpoint made on other data.
@Suite(.serialized) struct CheckpointLifecycleTests {
    let fm = FileManager.default

    /// A finished run leaves its weights and no checkpoint. A run stopped after one of two epochs
    /// keeps it (at epoch 1); a run whose final write fails keeps it (at epoch 2), and a resume
    /// from that checkpoint trains nothing more, writes the same weights as the uninterrupted run
    /// and then removes it.
    @Test func checkpointIsRemovedAfterSuccessOnly() throws {
        let data = try makeTinyDataset()
        let dir = temporaryDirectory("ckpt-life")
        defer { try? fm.removeItem(atPath: data); try? fm.removeItem(atPath: dir) }

        let o = tinyOptions(.mobilenetV2, out: dir + "/w.pth")
        let done = try finetune(dataset: data, options: o, log: { _ in })
        #expect(done.outputPath == dir + "/w.pth" && done.epochs.count == 2)
        #expect(try loadStateDict(path: dir + "/w.pth").tensors.count == 314)
        #expect(!fm.fileExists(atPath: o.resolvedCheckpointPath), "checkpoint left after a finished run")
        #expect(try fm.contentsOfDirectory(atPath: dir).sorted() == ["w-summary.json", "w.pth"], "the weights and their summary, nothing else")

        // Stopped (as if interrupted) after one epoch: the checkpoint stays, no weights.
        var stopped = tinyOptions(.mobilenetV2, out: dir + "/stopped.pth")
        stopped.stopAfterEpochs = 1
        _ = try finetune(dataset: data, options: stopped, log: { _ in })
        let c1 = try Checkpoint.read(path: stopped.resolvedCheckpointPath, expect: stopped, classes: ["ants", "bees"],
                                     parameterCount: nil, bufferCount: nil)
        #expect(c1.header.state.nextEpoch == 1 && !fm.fileExists(atPath: dir + "/stopped.pth"))

        // The final write fails (no such directory): the checkpoint of the finished epochs stays.
        var failing = tinyOptions(.mobilenetV2, out: dir + "/missing-dir/w.pth")
        failing.checkpointPath = dir + "/failing.checkpoint"
        #expect(throws: (any Error).self) { _ = try finetune(dataset: data, options: failing, log: { _ in }) }
        let c2 = try Checkpoint.read(path: dir + "/failing.checkpoint", expect: failing, classes: ["ants", "bees"],
                                     parameterCount: nil, bufferCount: nil)
        #expect(c2.header.state.nextEpoch == 2)

        // Resuming it to another output trains nothing, writes the same weights, removes it.
        var resumed = failing
        resumed.outputPath = dir + "/resumed.pth"
        resumed.resume = true
        var lines: [String] = []
        let r = try finetune(dataset: data, options: resumed, log: { lines.append($0) })
        #expect(lines.first == "Resuming from \(dir)/failing.checkpoint at epoch 2")
        #expect(lines.filter { $0.hasPrefix("Epoch ") } == ["Epoch 0/1", "Epoch 1/1"])   // the two replayed epochs, no more
        #expect(r.epochs.map(\.trainLoss) == done.epochs.map(\.trainLoss))
        #expect(r.epochs.map(\.validationAccuracy) == done.epochs.map(\.validationAccuracy))
        let x = try loadStateDict(path: dir + "/w.pth"), y = try loadStateDict(path: dir + "/resumed.pth")
        #expect(x.names == y.names)
        for t in x.tensors { #expect(t.values == y[t.name]!.values, "\(t.name) differs") }
        #expect(!fm.fileExists(atPath: dir + "/failing.checkpoint"))
    }

    /// `--resume` with DIR other than the checkpoint's data is refused, naming both folders and the
    /// way out, and the checkpoint is left as it was; the same files in another place (a moved or
    /// copied folder) resume; the original folder resumes.
    @Test func resumeRefusesOtherData() throws {
        let data = try makeTinyDataset()
        let other = try makeTinyDataset()
        let dir = temporaryDirectory("ckpt-data")
        defer { for p in [data, other, dir] { try? fm.removeItem(atPath: p) } }
        try fm.removeItem(atPath: other + "/train/ants/img0.png")   // one training image fewer

        var o = tinyOptions(.resnet18, out: dir + "/w.pth")
        o.stopAfterEpochs = 1
        _ = try finetune(dataset: data, options: o, log: { _ in })
        let ckpt = o.resolvedCheckpointPath
        let before = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        o.resume = true

        do {
            _ = try finetune(dataset: other, options: o, log: { _ in })
            Issue.record("resume on another data folder was accepted")
        } catch let e as FinetuneError {
            let text = e.description
            #expect(text.contains(data) && text.contains(other), "\(text)")
            #expect(text.contains("without --resume"), "\(text)")
            #expect(text.contains("13 training and 6 validation images") && text.contains("12 training and 6 validation images"), "\(text)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: ckpt)) == before)

        // The same folder with a file changed in size is other data too.
        let img = data + "/val/bees/img2.png"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: img))
        let original = bytes
        bytes.append(0)
        try bytes.write(to: URL(fileURLWithPath: img))
        #expect(throws: FinetuneError.self) { _ = try finetune(dataset: data, options: o, log: { _ in }) }
        try original.write(to: URL(fileURLWithPath: img))

        // A copy of the same files elsewhere resumes (the data are the same), and says so.
        let copy = dir + "/copy"
        try fm.copyItem(atPath: data, toPath: copy)
        o.stopAfterEpochs = 0
        var lines: [String] = []
        _ = try finetune(dataset: copy, options: o, log: { lines.append($0) })
        #expect(lines.first?.hasPrefix("Resuming from ") == true)
        #expect(lines.contains { $0.contains("made on \(data)") }, "\(lines.prefix(3))")

        // The original folder resumes to the end.
        o.stopAfterEpochs = nil
        let r = try finetune(dataset: data, options: o, log: { _ in })
        #expect(r.epochs.count == 2 && r.outputPath == dir + "/w.pth")
    }
}
