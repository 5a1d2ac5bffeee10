import Foundation
import Testing
import Store
import Workflows
import Extract
import TestSupport

/// Defect 6: on a read-only store, predict/query of a new image failed on the INSERT, and train
/// failed only after training.
@Suite(.serialized, .enabled(if: sharedAvailable && chattrWorks, "needs ../shared (data, weights) and chattr +i"))
struct ReadOnlyWorkflowTests {
    @Test func readOnlyStoreAnswersWithoutCachingAndTrainRefusesFirst() throws {
        let dir = temporaryDirectory("readonly")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeSplitTree(dir, splits: ["train", "val"], n: 2)
        let path = dir + "/store.sqlite"
        do {
            let store = try FeatureStore(path: path)
            _ = try extract(root: dir + "/D", into: store, options: ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, batchSize: 8))
        }
        // A new image (not in the store).
        let source = dataRoot + "/val/bees"
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: source).filter { $0.hasSuffix(".jpg") }.sorted().last)
        let newImage = dir + "/new.jpg"
        try FileManager.default.copyItem(atPath: source + "/" + name, toPath: newImage)

        #expect(chattrImmutable(path, true))
        defer { chattrImmutable(path, false) }
        let store = try FeatureStore(path: path)
        let backbone = try #require(try store.backbones().first)

        var options = TrainHeadOptions(name: "ro")
        options.sgd.epochs = 200   // long enough that "after training" would show
        let start = Date()
        do {
            _ = try trainHead(store: store, backbone: backbone, options: options)
            Issue.record("a head was trained on a read-only store")
        } catch {
            #expect("\(error)".contains("read-only") && "\(error)".contains("nothing was trained"), "\(error)")
        }
        #expect(Date().timeIntervalSince(start) < 1, "train refused only after \(Date().timeIntervalSince(start)) s")

        let features = try featuresOfImages([newImage], store: store, backbone: backbone, weightsPath: mobilenetWeights)
        #expect(features.count == 1 && features[0].vector.count == backbone.dimension && !features[0].cached)
        #expect(try store.vector(sha256: features[0].sha256, backbone: backbone) == nil)
    }
}
