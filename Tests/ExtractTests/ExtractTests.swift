import Foundation
import Backbones
#if canImport(Glibc)
import Glibc
#endif
import Testing
import NN
import Store
@testable import Extract
import TestSupport

@Suite(.serialized, .enabled(if: sharedAvailable, "needs ../shared (data, weights, reference outputs)"))
struct ExtractTests {
    /// The stored view-0 features of the 16 images of model_input.npy match PyTorch's features.
    @Test(arguments: [Architecture.resnet18, .mobilenetV2])
    func storedFeaturesMatchReference(kind: Architecture) throws {
        let images = Array(try manifestImages().prefix(16))
        #expect(images.count == 16)
        let dir = temporaryDirectory("parity")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeFolder(dir + "/data", files: images)
        let store = try FeatureStore(path: dir + "/store.sqlite")
        let weights = kind == .resnet18 ? resnetRefWeights : mobilenetWeights
        let summary = try extract(root: dir + "/data", into: store, options: ExtractOptions(backbone: kind, weightsPath: weights))
        #expect(summary.computed == 16 && summary.failed == 0)
        let ref = try NPY.read(path: sharedDirectory + (kind == .resnet18 ? "/reference/resnet18_features.npy"
                                                                            : "/reference/mobilenet_v2_features.npy"))
        let d = kind.featureDimension
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
        let dir = temporaryDirectory("rerun")
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
        let dir = temporaryDirectory("views")
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

/// kill -9 in the middle of an extraction, twice; the resumed runs end with the same store as an
/// uninterrupted run (canonical dump of every table), and the store passes integrity_check.
@Suite(.serialized, .enabled(if: sharedAvailable && probeExecutable != nil, "needs ../shared and the built probe executable"))
struct KillResumeTests {
    func count(_ path: String) -> Int {
        guard FileManager.default.fileExists(atPath: path),
              let store = try? FeatureStore(path: path, readOnly: true) else { return 0 }
        return Int((try? store.database.scalarInt("SELECT count(*) FROM features")) ?? 0)
    }

    func launch(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: probeExecutable!)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("probe-kill-test-stderr.txt")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        return p
    }

    @Test func killedExtractionResumesToTheSameStore() throws {
        let dir = temporaryDirectory("kill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        var n = 0
        for split in ["train", "val"] {
            for cls in ["ants", "bees"] {
                let files = try fm.contentsOfDirectory(atPath: "\(dataRoot)/\(split)/\(cls)").filter { $0.hasSuffix(".jpg") }.sorted().prefix(12)
                try fm.createDirectory(atPath: "\(dir)/data/\(split)/\(cls)", withIntermediateDirectories: true)
                for f in files { try fm.copyItem(atPath: "\(dataRoot)/\(split)/\(cls)/\(f)", toPath: "\(dir)/data/\(split)/\(cls)/\(f)"); n += 1 }
            }
        }
        let common = ["extract", dir + "/data", "--backbone", "mobilenet_v2", "--weights", mobilenetWeights, "--batch", "2", "--views", "1", "--quiet"]
        let whole = try launch(common + ["--store", dir + "/whole.sqlite"])
        whole.waitUntilExit()
        let stderrText = (try? String(contentsOfFile: FileManager.default.temporaryDirectory.appendingPathComponent("probe-kill-test-stderr.txt").path, encoding: .utf8)) ?? ""
        #expect(whole.terminationStatus == 0, "probe extract failed: \(stderrText)")
        let total = count(dir + "/whole.sqlite")
        #expect(total == n + n / 2)  // view 0 of every image, view 1 of the training half

        let resumed = dir + "/resumed.sqlite"
        var killedAt: [Int] = []
        for target in [total / 4, total / 2] {
            let p = try launch(common + ["--store", resumed])
            let deadline = Date().addingTimeInterval(120)
            while p.isRunning && count(resumed) < target && Date() < deadline { usleep(2_000) }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            killedAt.append(count(resumed))
        }
        #expect(killedAt[0] > 0 && killedAt[0] < total, "first kill landed at \(killedAt[0]) of \(total) rows")
        #expect(killedAt[1] > killedAt[0] && killedAt[1] < total, "second kill landed at \(killedAt[1]) of \(total) rows")
        let last = try launch(common + ["--store", resumed])
        last.waitUntilExit()
        #expect(last.terminationStatus == 0)

        let a = try FeatureStore(path: dir + "/whole.sqlite", readOnly: true)
        let b = try FeatureStore(path: resumed, readOnly: true)
        #expect(try b.integrityProblems().isEmpty)
        #expect(try a.canonicalDigest() == b.canonicalDigest())
    }
}
