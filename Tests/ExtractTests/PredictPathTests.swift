import Foundation
import Testing
import Store
import Workflows
import Extract
import TestSupport

@Suite struct PredictPathTests {
    /// `predict DIR` used to say "no such file".
    @Test func predictOnADirectorySaysItIsADirectory() throws {
        let dir = temporaryDirectory("predictdir")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let backbone = try store.backbone(architecture: "mobilenet_v2", weightsSHA256: String(repeating: "0", count: 64), dimension: 1280)
        do {
            _ = try featuresOfImages([dir], store: store, backbone: backbone, weightsPath: nil)
            Issue.record("expected an error")
        } catch {
            let message = "\(error)"
            #expect(message.contains("is a directory") && message.contains("probe extract \(dir)"), "\(message)")
        }
        do {
            _ = try featuresOfImages([dir + "/missing.jpg"], store: store, backbone: backbone, weightsPath: nil)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("no such file"), "\(error)")
        }
    }
}

/// predict and query compute the features of images not in the store with extraction's own code
/// (`computeValidationFeatures`): the vectors are those `extract` stores, bit for bit.
@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights)"))
struct NewImageFeaturesTests {
    @Test func newImagesGetTheVectorsExtractStores() throws {
        let dir = try temporaryDirectory("newfeatures")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeSplitTree(dir, splits: ["train", "val"], n: 2)
        let extracted = try FeatureStore(path: dir + "/extracted.sqlite")
        _ = try extract(root: dir + "/D", into: extracted,
                        options: ExtractOptions(backbone: .mobilenetV2, weightsPath: mobilenetWeights, batchSize: 3))
        let a = try #require(try extracted.backbones().first)
        let samples = try extracted.samples().sorted { $0.path < $1.path }
        #expect(samples.count == 8)

        // A fresh store of the same backbone: every image is new, all computed in one call.
        let fresh = try FeatureStore(path: dir + "/fresh.sqlite")
        let b = try fresh.backbone(architecture: a.architecture, weightsSHA256: a.weightsSHA256, dimension: a.dimension)
        let features = try featuresOfImages(samples.map(\.path), store: fresh, backbone: b, weightsPath: mobilenetWeights)
        #expect(features.count == samples.count)
        for (f, s) in zip(features, samples) {
            #expect(f.path == s.path && f.sha256 == s.sha256 && !f.cached && f.stored)
            #expect(f.vector == (try extracted.vector(sha256: s.sha256, backbone: a)), "\(s.path)")
            #expect(try fresh.vector(sha256: s.sha256, backbone: b) == f.vector, "not cached: \(s.path)")
        }
        #expect(try fresh.samples().isEmpty, "training data touched")
        // Asked again: from the store, without weights.
        let again = try featuresOfImages([samples[1].path], store: fresh, backbone: b, weightsPath: nil)
        #expect(again.count == 1 && again[0].cached && again[0].vector == features[1].vector)

        // A file that does not decode: the error names it.
        let bad = dir + "/bad.jpg"
        try Data("not a jpeg".utf8).write(to: URL(fileURLWithPath: bad))
        do {
            _ = try featuresOfImages([bad], store: fresh, backbone: b, weightsPath: mobilenetWeights)
            Issue.record("expected a decoding error")
        } catch {
            #expect("\(error)".contains(bad), "\(error)")
        }
    }
}
