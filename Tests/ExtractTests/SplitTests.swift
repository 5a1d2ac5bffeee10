import Foundation
import Testing
import Store
import Workflows
@testable import Extract
import TestSupport

/// `dir/D/<split>/<class>/` with the first `n` images of hymenoptera_data's train/<class>
/// (for every split listed).
func makeSplitTree(_ dir: String, splits: [String], n: Int) throws {
    let fm = FileManager.default
    for split in splits {
        for cls in ["ants", "bees"] {
            let dest = dir + "/D/" + split + "/" + cls
            try fm.createDirectory(atPath: dest, withIntermediateDirectories: true)
            let source = dataRoot + "/" + (split == "val" ? "val" : "train") + "/" + cls
            for name in try fm.contentsOfDirectory(atPath: source).filter({ $0.hasSuffix(".jpg") }).sorted().prefix(n) {
                try fm.copyItem(atPath: source + "/" + name, toPath: dest + "/" + name)
            }
        }
    }
}

@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights)"))
struct SplitTests {
    let options = ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, batchSize: 8)

    /// `extract D; extract D/train` used to set the train images' split to NULL: train then fell
    /// back to every sample (val included). Now D/train is the 'train' split; and a tree without
    /// split folders keeps the recorded splits, and says so.
    @Test func extractingASubfolderKeepsTheSplits() throws {
        let dir = temporaryDirectory("splits")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeSplitTree(dir, splits: ["train", "val"], n: 2)
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let first = try extract(root: dir + "/D", into: store, options: options)
        #expect(first.files == 8 && first.failed == 0)
        let second = try extract(root: dir + "/D/train", into: store, options: options)
        #expect(second.computed == 0 && second.cached == 4)
        #expect(try store.samples(split: "train").count == 4)
        #expect(try store.samples(split: "val").count == 4)
        #expect(try store.samples().allSatisfy { $0.split != nil })
        #expect(second.render().contains("recorded as split 'train'"), "\(second.render())")
        let backbone = try #require(try store.backbones().first)
        let data = try loadHeadDatasets(store: store, backbone: backbone)
        #expect(data.train.count == 4 && data.validation?.count == 4)

        // D/train without val/ beside it is a plain tree: the recorded splits are kept, and said.
        try FileManager.default.moveItem(atPath: dir + "/D/val", toPath: dir + "/val-elsewhere")
        let third = try extract(root: dir + "/D/train", into: store, options: options)
        #expect(third.render().contains("kept the split of 4 images already recorded as train"), "\(third.render())")
        #expect(try store.samples(split: "train").count == 4)
        #expect(try store.samples(split: "val").count == 4)   // not under D/train: untouched
    }

    /// A test/ folder beside train/ and val/ used to be skipped without a word: it is reported,
    /// and extracting it on its own records the split 'test'.
    @Test func folderBesideTrainAndValIsReported() throws {
        let dir = temporaryDirectory("testfolder")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeSplitTree(dir, splits: ["train", "val", "test"], n: 1)
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let all = try extract(root: dir + "/D", into: store, options: options)
        #expect(all.files == 4)
        #expect(all.render().contains("not read: test/"), "\(all.render())")
        #expect(all.render().contains("probe extract \(dir)/D/test"))
        let test = try extract(root: dir + "/D/test", into: store, options: options)
        #expect(test.files == 2)
        #expect(try store.samples(split: "test").count == 2)
        #expect(try store.samples(split: "train").count == 2)
    }
}
