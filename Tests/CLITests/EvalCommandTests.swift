import Foundation
import Testing
import Digest
import Store
@testable import CLI
import TestSupport

/// `probe eval --protocols`, `probe eval --head --calibrate`, `probe train --class-weight --calibrate`
/// through the front end, over a small synthetic store (two overlapping classes, train 3:1 imbalanced).
@Suite("eval command", .serialized)
struct EvalCommandTests {
    func makeStore(_ path: String) throws {
        let store = try FeatureStore(path: path)
        let b = try store.backbone(architecture: "resnet18", weightsSHA256: SHA256.hex(Array("w".utf8)), dimension: 4)
        var batch = Batch()
        var seed: UInt64 = 1
        func uniform() -> Float { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Float(seed >> 40) / Float(1 << 24) - 0.5 }
        for i in 0..<160 {
            let split = i < 120 ? "train" : "val"
            // train: 90 ants, 30 bees; val: 20 of each.
            let bee = split == "train" ? i % 4 == 0 : i % 2 == 0
            let label = bee ? "bees" : "ants"
            let v: [Float] = [(bee ? 0.6 : 0) + uniform(), uniform(), (bee ? -0.3 : 0.2) + uniform(), uniform()]
            let h = SHA256.hex(Array("image \(i)".utf8))
            batch.images.append(ImageRecord(sha256: h, byteSize: 10))
            batch.samples.append(SampleRecord(path: "\(split)/\(label)/\(i).jpg", sha256: h, label: label, split: split))
            batch.features.append(FeatureRecord(sha256: h, transform: "val", view: 0, vector: v))
        }
        try store.insertBatch(batch, backbone: b)
    }

    @Test func protocolsTrainingAndCalibration() throws {
        let dir = try TempDir()
        let path = dir.file("s.sqlite")
        try makeStore(path)
        #expect(probe("eval", "--store", path, "--protocols", "linear,knn,fewshot,calibration", "--json").status == 0)
        #expect(probe("eval", "--store", path).status == 0)
        let bad = probe("eval", "--store", path, "--protocols", "linear,frob")
        #expect(bad.status == 64 && bad.err.contains("unknown protocol 'frob'"))
        #expect(probe("eval", "--store", path, "--head", "h", "--protocols", "knn").status == 64)
        #expect(probe("eval", "--store", path, "--calibrate").status == 64)

        // A balanced, calibrated L-BFGS head: its class weight and temperature are saved.
        #expect(probe("train", "--store", path, "--name", "h", "--solver", "lbfgs", "--class-weight", "balanced", "--calibrate").status == 0)
        var store = try FeatureStore(path: path)
        let h = try #require(try store.loadHead(name: "h"))
        #expect(h.settingsJSON.contains("\"class_weight\":\"balanced\""))
        let t = try #require(h.temperature)
        #expect(t > 0 && t != 1)
        // The SGD head without --calibrate has none; eval --head --calibrate fits and saves one.
        #expect(probe("train", "--store", path, "--name", "s", "--epochs", "3", "--class-weight", "balanced").status == 0)
        #expect(try store.loadHead(name: "s")?.temperature == nil)
        #expect(probe("eval", "--store", path, "--head", "s", "--calibrate", "--json").status == 0)
        store = try FeatureStore(path: path)
        #expect(try store.loadHead(name: "s")?.temperature != nil)
        #expect(probe("train", "--store", path, "--class-weight", "frob").status == 64)
    }

    @Test func helpTeachesTheProtocols() {
        let help = probe("eval", "--help").out
        for word in ["--protocols", "--head", "--calibrate", "--class-weight", "1e-6", "exp(similarity / 0.07)", "EXAMPLES"] {
            #expect(help.contains(word), "eval --help lacks \(word)")
        }
        #expect(probe("bench", "eval", "--help").out.contains("--train"))
        #expect(probe("train", "--help").out.contains("--class-weight"))
    }
}
