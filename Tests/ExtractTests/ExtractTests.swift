import Foundation
import Testing
import NN
import Store
@testable import Extract

@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights, reference outputs)"))
struct ExtractTests {
    /// The stored view-0 features of the 16 images of model_input.npy match PyTorch's features.
    @Test(arguments: [BackboneKind.resnet18, .mobilenetV2])
    func storedFeaturesMatchReference(kind: BackboneKind) throws {
        let images = Array(try manifestImages().prefix(16))
        #expect(images.count == 16)
        let dir = try temporaryDirectory("parity")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeFolder(dir + "/data", files: images)
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let weights = kind == .resnet18 ? resnetRefWeights : mobilenetWeights
        let summary = try extract(root: dir + "/data", into: store, options: ExtractOptions(backbone: kind, weightsPath: weights))
        #expect(summary.computed == 16 && summary.failed == 0)
        let ref = try NPY.read(path: sharedDirectory + (kind == .resnet18 ? "/reference/resnet18_features.npy"
                                                                            : "/reference/mobilenet_v2_features.npy"))
        let d = kind.dimension
        #expect(ref.shape == [16, d])
        let backbone = try #require(try store.backbones().first)
        var worst = 1.0
        for (i, rel) in images.enumerated() {
            let parts = rel.split(separator: "/")
            let path = absolutePath(dir + "/data/" + parts[parts.count - 2] + "/" + parts[0] + "-" + parts.last!)
            let sample = try #require(try store.sample(path: path))
            let v = try #require(try store.vector(sha256: sample.sha256, backbone: backbone))
            worst = min(worst, cosine(v, Array(ref.data[(i * d)..<((i + 1) * d)])))
        }
        #expect(worst >= 0.9999, "worst cosine \(worst)")
    }

    /// A second run computes nothing; renamed and duplicated files compute nothing; a file that
    /// cannot be decoded is recorded and the run goes on.
    @Test func secondRunComputesNothingAndFailuresAreRecorded() throws {
        let images = Array(try manifestImages().prefix(6))
        let dir = try temporaryDirectory("rerun")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeFolder(dir + "/data", files: images)
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: dir + "/data/ants/broken.jpg"))
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let options = ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, batchSize: 4)
        let first = try extract(root: dir + "/data", into: store, options: options)
        #expect(first.files == 7 && first.computed == 6 && first.failed == 1 && first.cached == 0)
        #expect(first.failures.first?.path.hasSuffix("broken.jpg") == true)

        let second = try extract(root: dir + "/data", into: store, options: options)
        #expect(second.computed == 0 && second.cached == 6 && second.failed == 1)
        #expect(second.seconds < first.seconds * 0.1)

        // Rename one file and duplicate another: nothing is computed, the paths are recorded.
        let fm = FileManager.default
        let ants = try fm.contentsOfDirectory(atPath: dir + "/data/ants").filter { $0 != "broken.jpg" }.sorted()
        try fm.moveItem(atPath: dir + "/data/ants/" + ants[0], toPath: dir + "/data/ants/renamed.jpg")
        try fm.copyItem(atPath: dir + "/data/ants/" + ants[1], toPath: dir + "/data/bees/copy.jpg")
        let third = try extract(root: dir + "/data", into: store, options: options)
        #expect(third.computed == 0 && third.cached == 7 && third.removedSamples == 1)
        #expect(try store.sample(path: absolutePath(dir + "/data/ants/renamed.jpg")) != nil)
        #expect(try store.sample(path: absolutePath(dir + "/data/bees/copy.jpg"))?.label == "bees")
        #expect(try store.integrityProblems().isEmpty)
    }

    /// Augmented views are stored for training images only, and are reproducible for a seed.
    @Test func augmentedViewsAreSeeded() throws {
        let dir = try temporaryDirectory("views")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for split in ["train", "val"] {
            for cls in ["ants", "bees"] {
                let first = try fm.contentsOfDirectory(atPath: "\(dataRoot)/\(split)/\(cls)").filter { $0.hasSuffix(".jpg") }.sorted()[0]
                try fm.createDirectory(atPath: "\(dir)/data/\(split)/\(cls)", withIntermediateDirectories: true)
                try fm.copyItem(atPath: "\(dataRoot)/\(split)/\(cls)/\(first)", toPath: "\(dir)/data/\(split)/\(cls)/\(first)")
            }
        }
        var digests: [String] = []
        for run in 0..<2 {
            let store = try FeatureStore(path: dir + "/store\(run).sqlite")
            let s = try extract(root: dir + "/data", into: store,
                                options: ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, views: 2, seed: 7))
            #expect(s.computed == 4)
            let b = try #require(try store.backbones().first)
            let views = try store.views(backbone: b)
            #expect(views.map(\.view) == [0, 1, 2])
            #expect(views.map(\.count) == [4, 2, 2])
            digests.append(try store.canonicalDigest())
        }
        #expect(digests[0] == digests[1])
    }
}
